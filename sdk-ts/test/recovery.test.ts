// Recovery over a real cut: a client's connection goes through a TCP proxy that is cut and refuses
// connections for a while; messages sent to its room meanwhile arrive once it is back and has joined
// again, in order and each once, and the SDK reports `recovered: true`. Against the chat with `--history`.
import assert from "node:assert/strict";
import { createServer, Socket, type Server } from "node:net";
import { after, before, test } from "node:test";
import { recoveryStore, type Recovery } from "../src/index.js";
import { chatClient, invalidFrames, next, startExample, type Chat, until } from "./support.js";

let chat: Chat;
before(async () => {
  chat = await startExample("chat", 0, ["--history", "1000"]);
});
after(async () => {
  await chat?.stop();
});

/** A TCP proxy to the chat that can be cut: `cut()` drops its connections and refuses new ones until
 * `restore()`. */
async function proxy(): Promise<{ port: number; cut(): void; restore(): void; close(): Promise<void> }> {
  let down = false;
  const open = new Set<Socket>();
  const server: Server = createServer((inbound) => {
    if (down) return inbound.destroy();
    const outbound = new Socket();
    outbound.connect(chat.port, chat.host);
    inbound.pipe(outbound).pipe(inbound);
    const drop = () => {
      inbound.destroy();
      outbound.destroy();
    };
    inbound.on("error", drop).on("close", drop);
    outbound.on("error", drop).on("close", drop);
    open.add(inbound);
    inbound.on("close", () => open.delete(inbound));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (typeof address !== "object" || !address) throw new Error("no address");
  return {
    port: address.port,
    cut() {
      down = true;
      for (const socket of open) socket.destroy();
    },
    restore() {
      down = false;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

test("a client cut off while its room gets 150 messages ends with all of them, in order, once", async () => {
  const link = await proxy();
  const ann = chatClient(chat.url("ann"));
  const bob = chatClient(`ws://127.0.0.1:${link.port}/ws?token=bob`, {
    reconnect: { baseDelayMs: 100, maxDelayMs: 300 },
  });
  try {
    const heard: string[] = [];
    bob.on("chat", (data) => heard.push(data.text));
    const recoveries: Recovery[] = [];
    bob.onRecovery((r) => recoveries.push(r));
    // The same, through the group's handle: it hears of its own group only.
    const room = bob.group("history");
    const roomRecoveries: Recovery[] = [];
    room.onRecovery((r) => roomRecoveries.push(r));
    // And as a store, what a UI reads (the React bindings' `useRecovery`).
    const store = recoveryStore(bob, "history");
    let changes = 0;
    const unsubscribe = store.subscribe(() => (changes += 1));
    // Joined on every (re)connection, as a page would.
    bob.onState((state) => {
      if (state === "open") {
        void bob.request("join", { room: "history" });
        void bob.request("join", { room: "elsewhere" });
      }
    });
    await ann.ready();
    await ann.request("join", { room: "history" });
    // Bob's first join may be answered before ann's: counted, not awaited as the next event.
    await until("bob's first joins", () => recoveries.length === 2);
    await until("both in the room's presence", () => room.presence().members.length === 2);

    ann.send("chat", { text: "m0", room: "history" });
    await until("m0", () => heard.length === 1);

    link.cut();
    await next<string>((l) => bob.onState((s) => s === "reconnecting" && l(s)));
    for (let i = 1; i <= 150; i++) ann.send("chat", { text: `m${i}`, room: "history" });
    // ann hears her own messages: all were handled before bob comes back.
    let own = 0;
    let last = false;
    const stop = ann.on("chat", (data) => {
      own += 1;
      last ||= data.text === "m150";
    });
    await until("ann's own m150", () => last);
    stop();
    assert.ok(own >= 1);
    const recovered = next<Recovery>((l) => room.onRecovery(l), 10_000);
    link.restore();
    assert.deepEqual(await recovered, { group: "history", recovered: true });
    assert.deepEqual(store.getSnapshot(), { group: "history", recovered: true });
    assert.equal(store.getSnapshot(), store.getSnapshot(), "one snapshot until the next change");
    assert.equal(changes, 2, "the first join and the recovery");
    unsubscribe();
    await until("the 150 missed messages", () => heard.length >= 151);
    // Live again after the replay.
    ann.send("chat", { text: "m151", room: "history" });
    await until("m151", () => heard.length >= 152);
    assert.deepEqual(heard, Array.from({ length: 152 }, (_, i) => `m${i}`));
    assert.equal(bob.position("history")?.offset, 152);
    assert.deepEqual(room.position(), bob.position("history"));
    await until("both joins again", () => recoveries.length === 4);
    assert.equal(roomRecoveries.length, 2);
    assert.ok(roomRecoveries.every((r) => r.group === "history"));
    // The same frames, on demand: offsets 141 to 152 hold m140 to m151 (m0 was offset 1).
    const page = await room.history(140);
    assert.deepEqual(await bob.history("history", 140), page);
    assert.equal(page.complete, true);
    assert.deepEqual(
      page.frames.map((f) => (f.data as { text: string }).text),
      Array.from({ length: 12 }, (_, i) => `m${140 + i}`),
    );
    await assert.rejects(ann.history("not-joined"), (e: unknown) => e instanceof Error && "code" in e);
  } finally {
    ann.close();
    bob.close();
    await link.close();
  }
});

test("every frame the chat sent these clients fit the protocol's generated validators", () => {
  assert.deepEqual(invalidFrames, []);
});
