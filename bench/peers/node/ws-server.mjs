// The benchmark protocol on Node's `ws`: usage `node ws-server.mjs [PORT]`. With BENCH_DEFLATE=1,
// permessage-deflate on with `ws`'s own defaults for it (`perMessageDeflate: true`).
import { WebSocketServer } from "ws";

const members = new Set();
const server = new WebSocketServer({
  host: "127.0.0.1",
  port: Number(process.argv[2] ?? 0),
  path: "/ws",
  perMessageDeflate: process.env.BENCH_DEFLATE === "1",
});
server.on("listening", () => console.log(`listening on http://127.0.0.1:${server.address().port}`));
server.on("connection", (socket) => {
  socket.on("message", (raw, isBinary) => {
    if (isBinary) return;
    let frame;
    try {
      frame = JSON.parse(raw);
    } catch {
      return;
    }
    if (frame.type === "join") members.add(socket);
    else if (frame.type === "publish") {
      const out = JSON.stringify({ type: "publish", data: frame.data });
      for (const member of members) member.send(out);
    } else if (frame.type === "echo") socket.send(JSON.stringify({ type: "$reply", id: frame.id, data: frame.data }));
  });
  socket.on("close", () => members.delete(socket));
});
