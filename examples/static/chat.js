// The chat page's script (examples/chat.py serves it with app.static("/static", ...)).
const $ = (id) => document.getElementById(id);
function line(html, cls) {
  const div = document.createElement("div"); div.className = cls; div.innerHTML = html;
  $("log").appendChild(div); $("log").scrollTop = $("log").scrollHeight;
}
function esc(s) { const d = document.createElement("div"); d.textContent = s; return d.innerHTML; }
let ws;
$("join").onsubmit = (e) => {
  e.preventDefault();
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  ws = new WebSocket(scheme + location.host + "/chat?name=" + encodeURIComponent($("name").value));
  ws.onopen = () => { $("join").hidden = true; $("room").hidden = false; $("text").focus(); };
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    if (m.type === "message") line("<b>" + esc(m.name) + "</b>" + esc(m.text), "msg");
    else line(esc(m.name) + (m.type === "join" ? " joined" : " left") +
              " (" + m.count + " here)", "sys");
  };
  ws.onclose = (ev) => line("disconnected (" + ev.code + ")", "sys");
};
$("send").onsubmit = (e) => {
  e.preventDefault();
  if ($("text").value) { ws.send($("text").value); $("text").value = ""; }
};
