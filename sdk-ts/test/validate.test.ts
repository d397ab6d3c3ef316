// Run-time checks of frames (ws-codegen's validate.ts over the SDK's check functions): each kind of
// mismatch is caught with its path, and over a socket a frame that does not fit reaches no listener,
// request or handler, while data an untyped caller gives `send` or `request` never leaves.
import assert from "node:assert/strict";
import { once } from "node:events";
import { test } from "node:test";
import { WebSocketServer, type WebSocket as ServerSocket } from "ws";
import { validators as chat } from "../../examples/chat/sdk/validate.js";
import { validators as whiteboard } from "../../examples/whiteboard/sdk/validate.js";
import { type InvalidFrame, WsInvalidError, type Mismatch } from "../src/index.js";
import { chatClient, next, until } from "./support.js";

function check(table: Readonly<Record<string, (v: unknown, p: string) => Mismatch | undefined>>, type: string, data: unknown) {
  const found = table[type];
  assert.ok(found, `a check for ${type}`);
  return found(data, "data");
}

test("each kind of mismatch is found, with its path and what was expected", () => {
  const wb = whiteboard.server;
  const stroke = { id: 1, user: "ann", color: "#000", width: 3, points: [{ x: 1, y: 2 }] };
  assert.equal(check(wb, "stroke", stroke), undefined);
  // A wrong type, a missing field, a bound, an item of an array, a non-integer.
  assert.deepEqual(check(wb, "stroke", { ...stroke, user: 7 }), { path: "data.user", expected: "a string" });
  const { color: _, ...colorless } = stroke;
  assert.deepEqual(check(wb, "stroke", colorless), { path: "data.color", expected: "a value (required)" });
  assert.deepEqual(check(wb, "stroke", { ...stroke, width: 256 }), {
    path: "data.width",
    expected: "an integer from 0 to 255",
  });
  assert.deepEqual(check(wb, "stroke", { ...stroke, points: [{ x: 1, y: 2 }, { x: "1", y: 2 }] }), {
    path: "data.points[1].x",
    expected: "an integer from -2147483648 to 2147483647",
  });
  assert.equal(check(wb, "stroke", { ...stroke, width: 2.5 })?.path, "data.width");
  assert.deepEqual(check(wb, "stroke", [stroke]), { path: "data", expected: "an object" });
  assert.deepEqual(check(wb, "presence", { board: "b", members: "ann" }), { path: "data.members", expected: "an array" });
  // An optional field may be null or absent; a unit message takes no data, or null.
  assert.equal(check(chat.server, "chat", { text: "hi", user: "ann" }), undefined);
  assert.equal(check(chat.server, "chat", { text: "hi", user: "ann", room: null }), undefined);
  assert.equal(check(chat.server, "chat", { text: "hi", user: "ann", room: 3 })?.path, "data.room");
  assert.equal(check(chat.client, "whoami", null), undefined);
  assert.deepEqual(check(chat.client, "whoami", { x: 1 }), { path: "data", expected: "one of: null, ..." });
  // Replies, both ways.
  assert.equal(check(chat.serverReplies, "whoami", { client_id: "c", user: "ann", groups: ["a"] }), undefined);
  assert.deepEqual(check(chat.serverReplies, "whoami", { client_id: "c", user: "ann", groups: [1] }), {
    path: "data.groups[0]",
    expected: "a string",
  });
  assert.deepEqual(check(chat.clientReplies, "ask", {}), { path: "data.answer", expected: "a value (required)" });
});

/** A server on 127.0.0.1 that speaks whatever the test writes. */
async function fakeServer(): Promise<{ url: string; connected: Promise<ServerSocket>; close(): Promise<void> }> {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await once(wss, "listening");
  const address = wss.address();
  if (typeof address !== "object" || !address) throw new Error("no address");
  const connected = once(wss, "connection").then(([socket]) => socket as ServerSocket);
  return {
    url: `ws://127.0.0.1:${address.port}/ws`,
    connected,
    close: () => new Promise((resolve) => wss.close(() => resolve())),
  };
}

/** The next frame the server gets, parsed. */
function nextFrame(socket: ServerSocket): Promise<Record<string, unknown>> {
  return once(socket, "message").then(([data]) => JSON.parse(String(data)) as Record<string, unknown>);
}

test("over a socket, a frame that does not fit reaches nothing typed, and bad outgoing data never leaves", async () => {
  const server = await fakeServer();
  const invalid: InvalidFrame[] = [];
  const client = chatClient(server.url, { validate: chat, onInvalid: (frame) => invalid.push(frame) });
  try {
    const socket = await server.connected;
    await client.ready();
    const heard: unknown[] = [];
    client.on("chat", (data) => heard.push(data));

    // A server message that does not fit: reported, and no listener hears it; the next one, fitting, is heard.
    socket.send(JSON.stringify({ type: "chat", data: { text: "hi" } }));
    socket.send(JSON.stringify({ type: "chat", data: { text: "ok", user: "ann" } }));
    await until("the fitting message", () => heard.length === 1);
    assert.deepEqual(heard, [{ text: "ok", user: "ann" }]);
    assert.equal(invalid.length, 1);
    assert.deepEqual(
      { ...invalid[0], frame: undefined },
      { direction: "received", type: "chat", path: "data.user", expected: "a value (required)", frame: undefined },
    );
    assert.deepEqual(invalid[0]?.frame, { type: "chat", data: { text: "hi" } });

    // A type this protocol does not have.
    socket.send(JSON.stringify({ type: "surprise", data: 1 }));
    await until("the unknown type", () => invalid.length === 2);
    assert.equal(invalid[1]?.path, "type");

    // A reply that does not fit rejects the request.
    const asked = client.request("whoami");
    const request = await nextFrame(socket);
    socket.send(JSON.stringify({ type: "$reply", id: request["id"], data: { client_id: 1, user: "ann", groups: [] } }));
    await assert.rejects(asked, (e: unknown) => e instanceof WsInvalidError && e.path === "data.client_id" && e.code === "invalid_data");

    // A server request that does not fit is answered `invalid_data`, and the handler does not run.
    let handled = 0;
    client.handle("ask", () => {
      handled += 1;
      return { answer: "yes" };
    });
    socket.send(JSON.stringify({ type: "ask", id: 5, data: { question: "?" } }));
    const answer = await nextFrame(socket);
    assert.deepEqual(answer["type"], "$error");
    assert.equal((answer["data"] as { code: string }).code, "invalid_data");
    assert.equal(handled, 0);

    // A handler's answer that does not fit is not sent as a reply.
    client.handle("ask", () => ({ answer: 42 }) as unknown as { answer: string });
    socket.send(JSON.stringify({ type: "ask", id: 6, data: { question: "?", user: "bob" } }));
    const refused = await nextFrame(socket);
    assert.equal(refused["type"], "$error");
    assert.equal((refused["data"] as { message: string }).message, "data.answer: expected a string");

    // Data from an untyped caller is refused before it leaves: send throws, request rejects.
    const untyped = client as unknown as {
      send(type: string, data?: unknown): void;
      request(type: string, data?: unknown): Promise<unknown>;
    };
    assert.throws(() => untyped.send("chat", { text: 5 }), (e: unknown) => e instanceof WsInvalidError && e.path === "data.text");
    await assert.rejects(untyped.request("join", {}), (e: unknown) => e instanceof WsInvalidError && e.path === "data.room");
    assert.throws(() => untyped.send("nope"), (e: unknown) => e instanceof WsInvalidError && e.path === "type");
    client.send("chat", { text: "fits" });
    assert.deepEqual(await nextFrame(socket), { type: "chat", data: { text: "fits" } });
    assert.deepEqual(
      invalid.slice(-3).map((f) => [f.direction, f.type, f.path]),
      [
        ["sent", "chat", "data.text"],
        ["sent", "join", "data.room"],
        ["sent", "nope", "type"],
      ],
    );
  } finally {
    client.close();
    await server.close();
  }
});

test("without validators every frame is trusted", async () => {
  const server = await fakeServer();
  const client = chatClient(server.url, { validate: false });
  try {
    const socket = await server.connected;
    await client.ready();
    const heard = next<unknown>((l) => client.on("chat", l));
    socket.send(JSON.stringify({ type: "chat", data: { text: "no user" } }));
    assert.deepEqual(await heard, { text: "no user" });
  } finally {
    client.close();
    await server.close();
  }
});
