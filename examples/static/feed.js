// The feed page's script (examples/feed.py serves it with app.static("/static", ...)).
const url = (p) => (location.protocol === "https:" ? "wss://" : "ws://") + location.host + p;
const feed = new WebSocket(url("/feed"));
feed.onmessage = (e) => {
  if (e.data.startsWith("Echo: ")) { document.getElementById("echo").textContent = e.data; return; }
  document.getElementById("price").textContent = JSON.parse(e.data).value.toFixed(2);
};
document.getElementById("say").onchange = (e) => feed.send(e.target.value);
const beat = new WebSocket(url("/heartbeat"));
beat.onmessage = (e) => {
  document.getElementById("beat").textContent = JSON.parse(e.data).status + " " +
    new Date().toLocaleTimeString();
};
