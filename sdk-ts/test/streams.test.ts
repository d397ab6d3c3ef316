// Typed streams in the client (src/streams.ts, `client.stream`): against the chat's assistant, an answer
// read whole with `for await`; the same answer across a server-side cut (POST /admin/cut), resumed with
// every word once and in order; `break` and an AbortSignal cancelling the stream on the server; the
// handler's error thrown typed; a stream refused past the client's bound; an item that does not fit the
// generated validators ending the loop and cancelling the stream.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { WsInvalidError, WsRequestError } from "../src/index.js";
import { bareServer, chatClient, sleep, startExample, type Chat } from "./support.js";

const WORDS = 300;
let chat: Chat;

before(async () => {
  chat = await startExample("chat", 0, ["--assistant-words", String(WORDS), "--assistant-delay-ms", "3"]);
});

after(async () => {
  await chat?.stop();
});

interface StreamStats {
  streams_started: number;
  streams_cancelled: number;
  streams_resumed: number;
}

async function stats(): Promise<StreamStats> {
  const response = await fetch(`http://${chat.host}:${chat.port}/stats`);
  return (await response.json()) as StreamStats;
}

/** Closes `user`'s sockets on the server with 1001, as a restarting server would. */
async function cut(user: string): Promise<number> {
  const response = await fetch(`http://${chat.host}:${chat.port}/admin/cut?user=${user}`, {
    method: "POST",
    headers: { authorization: "Bearer admin" },
  });
  assert.equal(response.status, 200);
  return ((await response.json()) as { closed: number }).closed;
}

test("an answer streams whole: every word once, in order, typed", async () => {
  const client = chatClient(chat.url("ann"));
  try {
    const words: string[] = [];
    let index = 0;
    for await (const word of client.stream("assistant", { prompt: "typed streams" })) {
      assert.equal(word.index, index++);
      words.push(word.text);
    }
    assert.equal(words.length, WORDS);
    assert.match(words.join(""), /^You asked about “typed streams”: here is what I know\. a typed stream/);
  } finally {
    client.close();
  }
});

test("a stream cut by the server resumes on the next connection: nothing lost, nothing twice", async () => {
  const client = chatClient(chat.url("bob"), { reconnect: { baseDelayMs: 50 } });
  const before = await stats();
  try {
    const indexes: number[] = [];
    let cuts = 0;
    for await (const word of client.stream("assistant", { prompt: "resume" })) {
      indexes.push(word.index);
      if (word.index === 100 || word.index === 200) cuts += await cut("bob");
    }
    assert.equal(cuts, 2, "two connections cut");
    assert.deepEqual(indexes, [...Array(WORDS).keys()]);
    const after = await stats();
    assert.equal(after.streams_resumed - before.streams_resumed, 2);
  } finally {
    client.close();
  }
});

test("break and an AbortSignal cancel the stream on the server", async () => {
  const client = chatClient(chat.url("cy"));
  try {
    const before = await stats();
    for await (const word of client.stream("assistant", { prompt: "stop early" })) {
      if (word.index === 10) break;
    }
    const controller = new AbortController();
    let seen = 0;
    await assert.rejects(async () => {
      for await (const word of client.stream("assistant", { prompt: "abort" }, { signal: controller.signal })) {
        seen = word.index;
        if (word.index === 5) controller.abort(new Error("no longer wanted"));
      }
    }, /no longer wanted/);
    assert.equal(seen, 5);
    const deadline = Date.now() + 5_000;
    while ((await stats()).streams_cancelled - before.streams_cancelled !== 2) {
      assert.ok(Date.now() < deadline, "both streams cancelled on the server");
      await sleep(50);
    }
    // Still one usable connection.
    assert.equal((await client.request("whoami")).user, "cy");
  } finally {
    client.close();
  }
});

test("the handler's error ends the loop with a typed WsRequestError", async () => {
  const client = chatClient(chat.url("dee"));
  try {
    await assert.rejects(
      async () => {
        for await (const word of client.stream("assistant", { prompt: "  " })) assert.fail(`no word expected: ${word.text}`);
      },
      (error: unknown) => error instanceof WsRequestError && error.code === "invalid_data",
    );
  } finally {
    client.close();
  }
});

test("more streams than the server allows at once: the one too many ends with limit_exceeded", async () => {
  const client = chatClient(chat.url("eve"));
  try {
    const open = Array.from({ length: 16 }, () => client.stream("assistant", { prompt: "many" }));
    await sleep(50);
    await assert.rejects(
      async () => {
        for await (const word of client.stream("assistant", { prompt: "one too many" })) void word;
      },
      (error: unknown) => error instanceof WsRequestError && error.code === "limit_exceeded",
    );
    for (const stream of open) await stream.return?.();
  } finally {
    client.close();
  }
});

test("an item that does not fit its type ends the loop with WsInvalidError, and the stream is cancelled", async () => {
  const server = await bareServer((socket) => {
    socket.on("message", (data) => {
      const frame = JSON.parse(String(data)) as { type: string; id?: number };
      if (frame.type !== "assistant") return;
      socket.send(JSON.stringify({ type: "$stream", id: frame.id, data: { stream: "k" } }));
      socket.send(JSON.stringify({ type: "$chunk", id: frame.id, seq: 1, data: { text: "fine", index: 0 } }));
      socket.send(JSON.stringify({ type: "$chunk", id: frame.id, seq: 2, data: { text: 5, index: 1 } }));
    });
  });
  const client = chatClient(server.url);
  try {
    const seen: string[] = [];
    await assert.rejects(
      async () => {
        for await (const word of client.stream("assistant", { prompt: "p" })) seen.push(word.text);
      },
      (error: unknown) => error instanceof WsInvalidError && /text/.test(error.message),
    );
    assert.deepEqual(seen, ["fine"]);
    await sleep(100);
    assert.ok(server.received.some((frame) => frame.type === "$cancel"), "the stream is cancelled on the server");
  } finally {
    client.close();
    await server.close();
  }
});
