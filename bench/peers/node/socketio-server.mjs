// The benchmark protocol on Node's `socket.io`: `join` (room name), `publish` (broadcast to the room),
// `echo` (answered with an acknowledgement). Usage `node socketio-server.mjs [PORT [REDIS_URL]]`; with a
// Redis URL, nodes share rooms and broadcasts through `@socket.io/redis-adapter`.
import { createServer } from "node:http";
import { Server } from "socket.io";

const [port, redisUrl] = process.argv.slice(2);
const http = createServer();
const io = new Server(http, { transports: ["websocket"], serveClient: false });
if (redisUrl) {
  const { createClient } = await import("redis");
  const { createAdapter } = await import("@socket.io/redis-adapter");
  const pub = createClient({ url: redisUrl });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  io.adapter(createAdapter(pub, sub));
}
io.on("connection", (socket) => {
  socket.on("join", (room) => socket.join(room));
  socket.on("publish", (data) => io.to("bench").emit("publish", data));
  socket.on("echo", (data, ack) => typeof ack === "function" && ack(data));
});
http.listen(Number(port ?? 0), "127.0.0.1", () => {
  console.log(`listening on http://127.0.0.1:${http.address().port}`);
});
