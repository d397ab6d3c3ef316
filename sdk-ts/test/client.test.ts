// The SDK against the real chat server: typed send/on/request, errors, timeouts, server requests,
// reconnection after a restart on the same port, the outbound queue bound, and dead-connection detection.
import assert from "node:assert/strict";
import { Socket, createServer } from "node:net";
import { after, before, describe, test } from "node:test";
import { WsClosedError, WsQueueFullError, WsRequestError, WsTimeoutError, backoffDelay } from "../src/index.js";
import { chatClient, invalidFrames, next, nextMessage, startChat, type Chat } from "./support.js";

describe("ws-core-client against examples/chat", () => {
  let chat: Chat;
  before(async () => {
    chat = await startChat();
  });
  after(async () => {
    await chat.stop();
  });

  test("send, on and request are typed by the generated protocol", async () => {
    const ann = chatClient(chat.url("ann"));
    const bob = chatClient(chat.url("bob"));
    const welcome = await nextMessage(bob, "welcome");
    assert.equal(welcome.message, "connected");
    await ann.ready();
    assert.deepEqual(await ann.request("join", { room: "ts" }), { room: "ts", joined: true });
    assert.deepEqual(await bob.request("join", { room: "ts" }), { room: "ts", joined: true });
    const heard = nextMessage(bob, "chat");
    ann.send("chat", { text: "hello from ts", room: "ts" });
    assert.deepEqual(await heard, { text: "hello from ts", user: "ann", room: "ts" });
    const me = await ann.request("whoami");
    assert.equal(me.user, "ann");
    assert.deepEqual(me.groups, ["ts"]);
    ann.close();
    bob.close();
  });

  test("presence: each member's list of a room follows joins and leaves, typed by the protocol", async () => {
    const ann = chatClient(chat.url("ann"));
    const bob = chatClient(chat.url("bob"));
    const annId = (await nextMessage(ann, "welcome")).client_id;
    const view = ann.presence("presence-room");
    /** Resolves once a list is `want` (names) and the server's count agrees. */
    const listIs = (list: typeof view, want: string[]) =>
      new Promise<void>((resolve) => {
        const check = () => {
          const names = list.members.map((m) => m.meta.user).sort();
          if (list.count === want.length && JSON.stringify(names) === JSON.stringify(want)) {
            stop();
            resolve();
          }
        };
        const stop = list.onChange(check);
        check();
      });
    const until = (want: string[]) => listIs(view, want);
    await ann.request("join", { room: "presence-room" });
    await until(["ann"]);
    assert.equal(view.get(annId)?.user, "ann");
    assert.deepEqual(view.members, [{ id: annId, meta: { user: "ann" } }]);
    const joined = next<{ joins: string[] }>((l) => view.onChange((c) => l({ joins: c.joins.map((m) => m.meta.user) })));
    await bob.request("join", { room: "presence-room" });
    assert.deepEqual((await joined).joins, ["bob"]);
    await until(["ann", "bob"]);
    await listIs(bob.presence("presence-room"), ["ann", "bob"]);
    await bob.request("leave", { room: "presence-room" });
    await until(["ann"]);
    // A lost connection empties the list; joining again fills it.
    bob.close();
    ann.close();
    assert.equal(view.count, 0);
    assert.deepEqual(view.members, []);
  });

  test("error replies reject with the server's code", async () => {
    const eve = chatClient(chat.url("eve"));
    await assert.rejects(eve.request("admin:purge"), (error: unknown) => {
      assert.ok(error instanceof WsRequestError);
      assert.equal(error.code, "forbidden");
      return true;
    });
    const admin = chatClient(chat.url("admin"));
    assert.deepEqual(await admin.request("admin:purge"), { purged: true });
    // An `$error` that answers no request reaches onError.
    const unreported = next<WsRequestError>((l) => eve.onError(l));
    eve.send("dm", { to: "nobody", text: "hi" });
    assert.equal((await unreported).code, "not_found");
    eve.close();
    admin.close();
  });

  test("server requests are answered by handle(), and requests time out", async () => {
    const ann = chatClient(chat.url("ann"));
    const bob = chatClient(chat.url("bob"));
    const bobId = (await nextMessage(bob, "welcome")).client_id;
    bob.handle("ask", async (data) => ({ answer: `${data.user} asked "${data.question}": yes` }));
    await ann.ready();
    assert.deepEqual(await ann.request("ask", { to: bobId, question: "tea?" }), { answer: 'ann asked "tea?": yes' });
    // A handler that throws answers with `$error`.
    bob.handle("ask", () => {
      throw Object.assign(new Error("not now"), { code: "busy" });
    });
    await assert.rejects(ann.request("ask", { to: bobId, question: "now?" }), { name: "WsRequestError", code: "busy" });
    // Nobody answers: the client-side timeout fires first.
    bob.handle("ask", () => new Promise(() => {}));
    await assert.rejects(ann.request("ask", { to: bobId, question: "?" }, { timeoutMs: 200 }), WsTimeoutError);
    ann.close();
    bob.close();
    await assert.rejects(ann.request("whoami"), WsClosedError);
  });

  test("reconnects after the server dies and restarts on the same port; the queue is bounded", async () => {
    const server = await startChat();
    const states: string[] = [];
    const client = chatClient(server.url("rita"), {
      reconnect: { baseDelayMs: 50, maxDelayMs: 200 },
      maxQueue: 3,
    });
    let restarted: Chat | undefined;
    try {
      client.onState((state) => states.push(state));
      const me = (await nextMessage(client, "welcome")).client_id;
      // A request still waiting when the connection drops rejects: ask ourselves, and never answer.
      let asked: () => void = () => {};
      const askedOnce = new Promise<void>((resolve) => (asked = resolve));
      client.handle("ask", () => {
        asked();
        return new Promise(() => {});
      });
      const pendingAtDrop = client.request("ask", { to: me, question: "?" }, { timeoutMs: 60_000 });
      await askedOnce;
      // The process dies without a close frame; the waiting request fails with the connection.
      const failed = assert.rejects(pendingAtDrop, WsClosedError);
      await server.kill();
      await failed;
      assert.equal(client.state, "reconnecting");
      // While disconnected, up to maxQueue frames wait; one more is refused. (Sends: a request queued now
      // would be rejected by any attempt to connect that fails before the server is back.)
      for (const n of [1, 2, 3]) client.send("chat", { text: `queued ${n}` });
      assert.throws(() => client.send("chat", { text: "one too many" }), WsQueueFullError);
      restarted = await startChat(server.port);
      await client.ready();
      assert.equal((await client.request("whoami")).user, "rita");
      assert.ok(states.includes("reconnecting") && states.at(-1) === "open", states.join(","));
    } finally {
      client.close();
      await server.stop();
      await restarted?.stop();
    }
  });

  test("a silent connection is detected by the heartbeat and replaced", async () => {
    // A TCP proxy that can freeze: it keeps the socket open but stops forwarding anything.
    let frozen = false;
    const sockets: Socket[] = [];
    const proxy = createServer((downstream) => {
      const upstream = new Socket();
      sockets.push(downstream, upstream);
      upstream.connect(chat.port, chat.host);
      downstream.on("data", (d) => frozen || upstream.write(d));
      upstream.on("data", (d) => frozen || downstream.write(d));
      downstream.on("error", () => upstream.destroy());
      upstream.on("error", () => downstream.destroy());
      downstream.on("close", () => upstream.destroy());
      upstream.on("close", () => downstream.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    const port = (proxy.address() as { port: number }).port;
    const client = chatClient(`ws://127.0.0.1:${port}/ws?token=hb`, {
      heartbeatIntervalMs: 100,
      heartbeatTimeoutMs: 200,
      reconnect: { baseDelayMs: 20, maxDelayMs: 50 },
    });
    try {
      await client.ready();
      frozen = true;
      const lost = next<string>((l) => client.onState((state) => state === "reconnecting" && l(state)), 5_000);
      assert.equal(await lost, "reconnecting");
      frozen = false;
      for (const socket of sockets.splice(0)) socket.destroy();
      await client.ready();
      assert.equal((await client.request("whoami")).user, "hb");
    } finally {
      client.close();
      for (const socket of sockets) socket.destroy();
      proxy.close();
    }
  });
});

test("backoff uses full jitter under an exponential bound", () => {
  const options = { baseDelayMs: 100, maxDelayMs: 1_000, maxAttempts: Number.POSITIVE_INFINITY };
  assert.equal(backoffDelay(0, options, () => 0.999), 99);
  assert.equal(backoffDelay(3, options, () => 0.5), 400);
  assert.equal(backoffDelay(20, options, () => 0.999), 999);
  assert.equal(backoffDelay(5, options, () => 0), 0);
});

test("every frame the chat sent these clients fit the protocol's generated validators", () => {
  assert.deepEqual(invalidFrames, []);
});
