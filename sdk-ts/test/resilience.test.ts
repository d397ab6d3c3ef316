// What the client does when connections fail, over real sockets: a request rejected while disconnected
// is never sent later, an answer computed for a lost connection is not sent on the next one, the backoff
// grows against a server that keeps closing, close codes that mean "do not retry" stop reconnection,
// and a server request nobody handles is refused at once.
import assert from "node:assert/strict";
import { once } from "node:events";
import { test } from "node:test";
import { WebSocketServer } from "ws";
import { WsClosedError } from "../src/index.js";
import { bareServer, chatClient, sleep, startChat, type Chat } from "./support.js";


test("a request rejected while disconnected is not sent once the connection is back", async () => {
  const server = await startChat();
  let restarted: Chat | undefined;
  const client = chatClient(server.url("tom"), { reconnect: { baseDelayMs: 20, maxDelayMs: 50 } });
  try {
    await client.ready();
    await server.kill();
    // Made while disconnected: queued, then rejected when a reconnection attempt fails.
    await assert.rejects(client.request("join", { room: "r" }, { timeoutMs: 60_000 }), WsClosedError);
    restarted = await startChat(server.port);
    await client.ready();
    assert.deepEqual((await client.request("whoami")).groups, []);
  } finally {
    client.close();
    await restarted?.stop();
  }
});

test("an answer to a request of a lost connection is not sent on the next one", async () => {
  const server = await bareServer((socket, index) => {
    if (index === 0) {
      socket.send(JSON.stringify({ type: "ask", id: 1, data: { question: "q", user: "u" } }));
    }
  });
  const client = chatClient(server.url, { reconnect: { baseDelayMs: 10, maxDelayMs: 20 } });
  let answer: (value: { answer: string }) => void = () => {};
  let asked: () => void = () => {};
  const askedOnce = new Promise<void>((resolve) => (asked = resolve));
  client.handle("ask", () => {
    asked();
    return new Promise((resolve) => (answer = resolve));
  });
  try {
    await askedOnce;
    // The first connection drops while the answer is being worked out.
    const back = new Promise<void>((resolve) => client.onState((s) => s === "open" && resolve()));
    for (const socket of server.sockets()) socket.terminate();
    await back;
    answer({ answer: "late" });
    await sleep(200);
    assert.equal(server.connections(), 2);
    assert.deepEqual(
      server.received.filter((f) => f.type === "$reply" || f.type === "$error"),
      [],
    );
  } finally {
    client.close();
    await server.close();
  }
});

test("the backoff grows against a server that closes every connection at once", async () => {
  const server = await bareServer((socket) => socket.close(1001, "restarting"));
  // The jitter at its top: each delay is the bound itself, 20, 40, 80, 160, 320, 640 ms...
  const client = chatClient(server.url, {
    reconnect: { baseDelayMs: 20, maxDelayMs: 5_000, stableAfterMs: 1_000 },
    random: () => 0.999,
  });
  try {
    await sleep(1_000);
    // Starting over from 20 ms after each open would have made about 50 connections.
    const made = server.connections();
    assert.ok(made >= 4 && made <= 7, `${made} connections in 1 s`);
  } finally {
    client.close();
    await server.close();
  }
});

test("close codes that mean the client is at fault stop reconnection; 1008 slows it", async () => {
  // 3400, 3401, 3403: a handshake the server refused as the client is (asked for as a close frame).
  for (const code of [1003, 1007, 1009, 3400, 3401, 3403, 3409, 4001]) {
    const server = await bareServer((socket) => socket.close(code, "no"));
    const client = chatClient(server.url, { reconnect: { baseDelayMs: 1, maxDelayMs: 10 } });
    const closed = new Promise<number | undefined>((resolve) =>
      client.onState((state, close) => state === "closed" && resolve(close?.code)),
    );
    assert.equal(await closed, code);
    await sleep(100);
    assert.equal(server.connections(), 1, `close ${code}`);
    client.close();
    await server.close();
  }
  // 3429: a handshake refused for too many connections from one address is slowed like 1008.
  for (const code of [1008, 3429]) {
    const server = await bareServer((socket) => socket.close(code, "slow down"));
    const client = chatClient(server.url, { reconnect: { baseDelayMs: 1, maxDelayMs: 300 } });
    try {
      await sleep(700);
      // Every retry waits the longest delay: 1 + 700 / 300 connections, not hundreds.
      assert.ok(server.connections() <= 3, `${server.connections()} connections in 700 ms after ${code}`);
      assert.equal(client.state, "reconnecting");
    } finally {
      client.close();
      await server.close();
    }
  }
  // 3503: the server was full or stopping; it is retried with backoff.
  const server = await bareServer((socket) => socket.close(3503, "too many connections"));
  const client = chatClient(server.url, { reconnect: { baseDelayMs: 1, maxDelayMs: 10 } });
  try {
    await sleep(300);
    assert.ok(server.connections() >= 5, `${server.connections()} connections in 300 ms after 3503`);
    // Between a socket's open and its close the state is "open": what matters is that it never ends.
    assert.notEqual(client.state, "closed");
  } finally {
    client.close();
    await server.close();
  }
});

test("after a close the client does not retry, send and request fail at once, naming that close", async () => {
  const server = await bareServer((socket) => socket.close(3409, "protocol mismatch: load the current client"));
  const client = chatClient(server.url, { reconnect: { baseDelayMs: 1, maxDelayMs: 10 } });
  try {
    await new Promise<void>((resolve) => client.onState((state) => state === "closed" && resolve()));
    for (let i = 0; i < 150; i++) {
      // Past the 100 frames a queue would hold: none is queued for a socket that never comes.
      assert.throws(
        () => client.send("join", { room: "r" }),
        (error: unknown) =>
          error instanceof WsClosedError && /3409: protocol mismatch: load the current client/.test(error.message),
      );
    }
    await assert.rejects(client.request("whoami"), (error: unknown) =>
      error instanceof WsClosedError && /ended for good \(3409/.test(error.message),
    );
    await sleep(50);
    assert.equal(server.connections(), 1);
    assert.equal(server.received.length, 0);
  } finally {
    client.close();
    await server.close();
  }
});

test("a server request with no handler is answered at once with unknown_type", async () => {
  const server = await bareServer((socket) => socket.send(JSON.stringify({ type: "ask", id: 7, data: {} })));
  const client = chatClient(server.url);
  try {
    const start = Date.now();
    while (server.received.length === 0 && Date.now() - start < 2_000) await sleep(10);
    assert.deepEqual(server.received[0], {
      type: "$error",
      id: 7,
      data: { code: "unknown_type", message: 'no handler for "ask"' },
    });
  } finally {
    client.close();
    await server.close();
  }
});

test("every connection's URL asks for refusals as closes and names the protocol's fingerprint, beside the application's query", async () => {
  const urls: string[] = [];
  const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await once(server, "listening");
  server.on("connection", (socket, request) => {
    urls.push(request.url ?? "");
    if (urls.length === 1) socket.close(1001, "restart");
  });
  const port = (server.address() as { port: number }).port;
  const client = chatClient(`ws://127.0.0.1:${port}/ws?token=a%20b`, {
    protocol: "0123456789abcdef",
    reconnect: { baseDelayMs: 1, maxDelayMs: 10 },
  });
  try {
    for (let i = 0; i < 200 && urls.length < 2; i++) await sleep(10);
    const url = "/ws?token=a%20b&ws_refusal=close&ws_protocol=0123456789abcdef";
    assert.deepEqual(urls, [url, url]);
  } finally {
    client.close();
    for (const socket of server.clients) socket.terminate();
    await new Promise((resolve) => server.close(resolve));
  }
});
