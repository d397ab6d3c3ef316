// Sessions in the client (src/session.ts, `getToken`): against the chat with 2-second tokens, a client
// keeps one socket across many tokens; against bare servers, each rule: a 4001 close fetches a new token
// and connects again, a refused refresh ends the client naming why, a 3401 is retried once with a fresh
// token, a failing `getToken` is retried, a refresh racing a reconnection is not carried to the new
// socket, and two askers share one fetch.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { WsClosedError } from "../src/index.js";
import { SessionKeeper } from "../src/session.js";
import { bareServer, chatClient, sleep, startExample, until, type Chat } from "./support.js";

let chat: Chat;

before(async () => {
  chat = await startExample("chat", 0, ["--token-ttl", "2", "--session-grace", "1"]);
});

after(async () => {
  await chat?.stop();
});

/** A token of the chat for `name`, counting the calls in `calls`. */
function chatTokens(name: string, calls: { count: number }): () => Promise<string> {
  return async () => {
    calls.count += 1;
    const response = await fetch(`http://${chat.host}:${chat.port}/token?name=${name}`);
    assert.equal(response.status, 200);
    return response.text();
  };
}

async function stats(): Promise<{ sessions_refreshed: number; sessions_expired: number }> {
  const response = await fetch(`http://${chat.host}:${chat.port}/stats`);
  return (await response.json()) as { sessions_refreshed: number; sessions_expired: number };
}

test("with getToken, a client keeps one socket across tokens that last 2 s", async () => {
  const calls = { count: 0 };
  const before = await stats();
  const client = chatClient(`ws://${chat.host}:${chat.port}/ws`, { getToken: chatTokens("ann", calls) });
  let opened = 0;
  client.onState((state) => state === "open" && (opened += 1));
  try {
    await client.ready();
    opened = 1;
    await sleep(5_500);
    assert.equal(client.state, "open");
    assert.equal(opened, 1, "no reconnection");
    assert.equal((await client.request("whoami")).user, "ann");
    const after = await stats();
    // Refreshed halfway through each token's life: about once a second.
    assert.ok(after.sessions_refreshed - before.sessions_refreshed >= 4, JSON.stringify(after));
    assert.equal(after.sessions_expired, before.sessions_expired);
    assert.equal(calls.count, after.sessions_refreshed - before.sessions_refreshed + 1);
  } finally {
    client.close();
  }
});

test("a client without getToken is closed with 4001 when its token expires, and stays closed", async () => {
  const response = await fetch(`http://${chat.host}:${chat.port}/token?name=bob`);
  const client = chatClient(chat.url(await response.text()));
  try {
    const closed = await new Promise<{ code: number; reason: string } | undefined>((resolve) =>
      client.onState((state, close) => state === "closed" && resolve(close)),
    );
    // 2 s of token, then the server's 1 s grace.
    assert.deepEqual(closed, { code: 4001, reason: "token expired" });
  } finally {
    client.close();
  }
});

test("after close 4001 the client fetches a new token and connects with it", async () => {
  const server = await bareServer((socket, index) => {
    if (index === 0) socket.close(4001, "token expired");
  });
  let issued = 0;
  const client = chatClient(server.url, {
    getToken: async () => `t${++issued}`,
    reconnect: { baseDelayMs: 1, maxDelayMs: 10 },
  });
  try {
    await until("a second connection", () => server.connections() === 2);
    await client.ready();
    assert.deepEqual(server.urls, ["/ws?ws_refusal=close&token=t1", "/ws?ws_refusal=close&token=t2"]);
  } finally {
    client.close();
    await server.close();
  }
});

test("a refresh the server refuses ends the client for good, naming why", async () => {
  const server = await bareServer((socket) => {
    socket.send(JSON.stringify({ type: "$session", data: { expires_in_ms: 100 } }));
    socket.on("message", (data) => {
      const frame = JSON.parse(String(data)) as { type: string; id?: number };
      if (frame.type === "$refresh") {
        socket.send(JSON.stringify({ type: "$error", id: frame.id, data: { code: "unauthorized", message: "banned" } }));
      }
    });
  });
  const client = chatClient(server.url, { getToken: async () => "t" });
  try {
    const closed = await new Promise<{ code: number; reason: string } | undefined>((resolve) =>
      client.onState((state, close) => state === "closed" && resolve(close)),
    );
    assert.deepEqual(closed, { code: 4001, reason: "refresh refused: banned" });
    assert.throws(
      () => client.send("chat", { text: "hi" }),
      (error: unknown) => error instanceof WsClosedError && /4001: refresh refused: banned/.test(error.message),
    );
    await sleep(100);
    assert.equal(server.connections(), 1);
  } finally {
    client.close();
    await server.close();
  }
});

test("a handshake refused with 3401 is tried once more with a fresh token, then not again", async () => {
  const server = await bareServer((socket) => socket.close(3401, "invalid token"));
  let issued = 0;
  const client = chatClient(server.url, {
    getToken: async () => `t${++issued}`,
    reconnect: { baseDelayMs: 1, maxDelayMs: 10 },
  });
  try {
    const closed = await new Promise<{ code: number; reason: string } | undefined>((resolve) =>
      client.onState((state, close) => state === "closed" && resolve(close)),
    );
    assert.deepEqual(closed, { code: 3401, reason: "invalid token" });
    await sleep(100);
    assert.deepEqual(server.urls, ["/ws?ws_refusal=close&token=t1", "/ws?ws_refusal=close&token=t2"]);
  } finally {
    client.close();
    await server.close();
  }
});

test("a getToken that fails is tried again with backoff", async () => {
  const server = await bareServer();
  let calls = 0;
  const client = chatClient(server.url, {
    getToken: async () => {
      calls += 1;
      if (calls < 3) throw new Error("login service down");
      return "t";
    },
    reconnect: { baseDelayMs: 1, maxDelayMs: 10 },
  });
  try {
    await client.ready();
    assert.equal(calls, 3);
    assert.deepEqual(server.urls, ["/ws?ws_refusal=close&token=t"]);
  } finally {
    client.close();
    await server.close();
  }
});

test("a refresh racing a reconnection is not carried to the new socket", async () => {
  // The first socket announces a short session, then goes while the refresh's token is being fetched.
  const server = await bareServer((socket, index) => {
    if (index === 0) {
      socket.send(JSON.stringify({ type: "$session", data: { expires_in_ms: 200 } }));
      setTimeout(() => socket.close(1001, "restart"), 150);
    }
  });
  let calls = 0;
  const client = chatClient(server.url, {
    getToken: async () => {
      calls += 1;
      await sleep(calls === 1 ? 0 : 300);
      return `t${calls}`;
    },
    reconnect: { baseDelayMs: 1, maxDelayMs: 10 },
  });
  try {
    await until("a second connection", () => server.connections() === 2);
    await sleep(600);
    // One fetch at connection, one for the refresh; its token was not sent on the second socket.
    assert.equal(calls, 2);
    assert.deepEqual(
      server.received.filter((f) => f.type === "$refresh"),
      [],
    );
    assert.equal(client.state, "open");
  } finally {
    client.close();
    await server.close();
  }
});

test("two askers of a token share one getToken call", async () => {
  let calls = 0;
  const keeper = new SessionKeeper(
    async () => {
      calls += 1;
      await sleep(50);
      return `t${calls}`;
    },
    10_000,
    { refresh: async () => ({ expires_in_ms: null }), generation: () => 0, end: () => {} },
  );
  const [a, b] = await Promise.all([keeper.next(), keeper.next()]);
  assert.deepEqual([a, b, calls, keeper.token], ["t1", "t1", 1, "t1"]);
  assert.equal(await keeper.next(), "t2", "a later ask fetches again");
});

test("$left empties the group's presence list and tells onLeft why", async () => {
  const server = await bareServer((socket) => {
    socket.send(JSON.stringify({ type: "$presence_state", data: { group: "a", count: 1, members: { c1: { user: "ann" } } } }));
    setTimeout(() => socket.send(JSON.stringify({ type: "$left", data: { group: "a", reason: "expired" } })), 300);
  });
  const client = chatClient(server.url);
  try {
    const leaving = new Promise((resolve) => client.onLeft(resolve));
    await until("ann listed", () => client.presence("a").members.length === 1);
    const left = await leaving;
    assert.deepEqual(left, { group: "a", reason: "expired" });
    assert.deepEqual(client.presence("a").members, []);
  } finally {
    client.close();
    await server.close();
  }
});
