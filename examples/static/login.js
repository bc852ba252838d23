// The login page's script (examples/login.py): log in with fetch(), then open the socket;
// the browser sends the session cookie with the WebSocket handshake by itself.
const $ = (id) => document.getElementById(id);
function say(text) {
  const div = document.createElement("div"); div.textContent = text; $("log").appendChild(div);
}
let ws;
function openRoom() {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  ws = new WebSocket(scheme + location.host + "/room");
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    if (m.type === "welcome") { say("welcome " + m.user); $("send").hidden = false; }
    else say(m.user + ": " + m.text);
  };
  ws.onclose = (ev) => say("disconnected (" + ev.code + ")");
}
$("login").onsubmit = async (e) => {
  e.preventDefault();
  const body = new URLSearchParams({ user: $("user").value, password: $("password").value });
  const r = await fetch("/login", { method: "POST", body });
  const answer = await r.json();
  $("status").textContent = r.ok ? "logged in as " + answer.user : answer.error;
  if (r.ok) openRoom();
};
$("send").onsubmit = (e) => {
  e.preventDefault();
  if ($("text").value) { ws.send($("text").value); $("text").value = ""; }
};
