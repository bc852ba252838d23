// A Node.js `ws` client with permessage-deflate: echoes text and binary of several sizes,
// one fragmented message, and prints a JSON report. Usage: node deflate_client.js URL
const WebSocket = require("ws");
const crypto = require("crypto");

const url = process.argv[2];
const ws = new WebSocket(url, { perMessageDeflate: { threshold: 0 } });
const report = { extensions: null, echoed: [], errors: [] };
const sizes = [1, 200, 70000, 1 << 20];
const cases = [];
for (const n of sizes) {
  cases.push({ kind: "text", data: "node ✓ ".repeat(Math.ceil(n / 7)).slice(0, n) });
  const buf = Buffer.alloc(n);
  crypto.randomFillSync(buf, 0, Math.floor(n / 2));
  cases.push({ kind: "binary", data: buf });
}

function next(i) {
  if (i === cases.length) {
    // One message in three fragments: only the first carries RSV1.
    const parts = ["frag-one ".repeat(40), "frag-two ".repeat(40), "frag-three ".repeat(40)];
    ws.once("message", (data, isBinary) => {
      report.fragmented = !isBinary && data.toString() === parts.join("");
      ws.close(1000, "done");
    });
    ws.send(parts[0], { fin: false });
    ws.send(parts[1], { fin: false });
    ws.send(parts[2], { fin: true });
    return;
  }
  const c = cases[i];
  ws.once("message", (data, isBinary) => {
    const ok =
      c.kind === "text"
        ? !isBinary && data.toString() === c.data
        : isBinary && Buffer.compare(data, c.data) === 0;
    report.echoed.push({ kind: c.kind, size: c.data.length, ok });
    next(i + 1);
  });
  ws.send(c.data, { binary: c.kind === "binary", compress: true });
}

ws.on("open", () => {
  report.extensions = ws.extensions;
  next(0);
});
ws.on("error", (err) => report.errors.push(String(err)));
ws.on("close", (code) => {
  report.close = code;
  console.log(JSON.stringify(report));
});
setTimeout(() => {
  report.errors.push("timeout");
  console.log(JSON.stringify(report));
  process.exit(1);
}, 30000).unref();
