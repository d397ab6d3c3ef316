// The React bindings against the chat server, rendered with react-dom into jsdom under StrictMode: one
// socket however often StrictMode mounts, each message heard once, typed hooks for the connection,
// messages, requests (with their loading and error state) and presence, and the socket closed once the
// provider unmounts.
import assert from "node:assert/strict";
import { once } from "node:events";
import { after, before, test } from "node:test";
import { JSDOM } from "jsdom";
import { createElement, StrictMode, useEffect } from "react";
import { act } from "react";
import { createRoot } from "react-dom/client";
import { WebSocketServer } from "ws";
import type { Protocol } from "../../examples/chat/sdk/protocol.js";
import type { WsClient } from "../src/index.js";
import { createWsReact } from "../src/react.js";
import { chatClient, startChat, until, type Chat } from "./support.js";

const dom = new JSDOM("<!doctype html><html><body><div id=root></div></body></html>");
Object.assign(globalThis, { window: dom.window, document: dom.window.document });

const { WsProvider, useClient, useConnection, useConnectionState, useLastError, useLastMessage, useMessage, usePresence, useRequest } =
  createWsReact<Protocol>();

let chat: Chat;
before(async () => {
  chat = await startChat();
});
after(async () => {
  await chat?.stop();
});

/** A page of the chat: joins `react` once open, and shows what the hooks give. */
function Room({ heard }: { heard: string[] }) {
  const state = useConnectionState();
  const last = useLastMessage("chat");
  const members = usePresence("react");
  const join = useRequest("join");
  const purge = useRequest("admin:purge");
  useMessage("chat", (data, meta) => heard.push(`${data.text} from ${meta.from === undefined ? "?" : "someone"}`));
  const { run: joinRoom } = join;
  const { run: tryPurge } = purge;
  useEffect(() => {
    if (state !== "open") return;
    joinRoom({ room: "react" }).catch(() => {});
    tryPurge().catch(() => {});
  }, [state, joinRoom, tryPurge]);
  const shown = {
    state,
    last: last?.data.text ?? null,
    members: members.members.map((m) => m.meta.user).sort(),
    count: members.count,
    joined: join.data?.room ?? null,
    purge: (purge.error as { code?: string } | undefined)?.code ?? null,
  };
  return createElement("pre", { id: "out" }, JSON.stringify(shown));
}

function shown(): Record<string, unknown> {
  const text = dom.window.document.getElementById("out")?.textContent;
  return text ? (JSON.parse(text) as Record<string, unknown>) : {};
}

test("under StrictMode one socket serves the hooks, each message is heard once, and unmounting closes it", async () => {
  const made: WsClient<Protocol>[] = [];
  const connect = () => {
    const client = chatClient(chat.url("ann"));
    made.push(client);
    return client;
  };
  const heard: string[] = [];
  const root = createRoot(dom.window.document.getElementById("root")!);
  await act(async () => {
    root.render(
      createElement(StrictMode, null, createElement(WsProvider, { connect, fallback: "connecting" }, createElement(Room, { heard }))),
    );
  });
  const bob = chatClient(chat.url("bob"));
  try {
    await until("open, joined, and the purge refused", () => {
      const now = shown();
      return now["state"] === "open" && now["joined"] === "react" && now["purge"] === "forbidden";
    });
    await bob.request("join", { room: "react" });
    await until("both in the presence list", () => JSON.stringify(shown()["members"]) === '["ann","bob"]');
    assert.equal(shown()["count"], 2);
    bob.send("chat", { text: "hello", room: "react" });
    await until("the message shown", () => shown()["last"] === "hello");
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(heard, ["hello from someone"], "one listener, however often StrictMode ran the effect");
    assert.equal(made.length, 1, "one client, however often StrictMode mounted the provider");
  } finally {
    await act(async () => root.unmount());
    bob.close();
  }
  await until("the provider's client closed", () => made[0]?.state === "closed");
});

/** What a page shows when something went wrong: the connection with its close, and the last `$error`. */
function Status({ say }: { say?: string }) {
  const client = useClient();
  const connection = useConnection();
  const error = useLastError();
  useEffect(() => {
    if (connection.state === "open" && say !== undefined) client.send("chat", { text: say, room: "react" });
  }, [client, connection.state, say]);
  const shown = {
    state: connection.state,
    close: connection.close ?? null,
    error: error ? { code: error.code, message: error.message } : null,
  };
  return createElement("pre", { id: "out" }, JSON.stringify(shown));
}

test("useLastError shows a send the server refused, with its code and message", async () => {
  const root = createRoot(dom.window.document.getElementById("root")!);
  const connect = () => chatClient(chat.url("cat"));
  await act(async () => {
    root.render(createElement(WsProvider, { connect }, createElement(Status, { say: "x".repeat(2001) })));
  });
  try {
    await until("the refusal shown", () => shown()["error"] !== null);
    assert.deepEqual(shown()["error"], { code: "invalid_data", message: "text longer than 2000 characters" });
    assert.equal(shown()["state"], "open");
    assert.equal(shown()["close"], null);
  } finally {
    await act(async () => root.unmount());
  }
});

test("useConnection shows the close that ended the connection: 3409 from a server of another version", async () => {
  const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await once(server, "listening");
  server.on("connection", (socket) => socket.close(3409, "protocol mismatch: load the current client"));
  const port = (server.address() as { port: number }).port;
  const root = createRoot(dom.window.document.getElementById("root")!);
  const connect = () => chatClient(`ws://127.0.0.1:${port}/ws`);
  await act(async () => {
    root.render(createElement(WsProvider, { connect }, createElement(Status)));
  });
  try {
    await until("the close shown", () => shown()["state"] === "closed");
    assert.deepEqual(shown()["close"], { code: 3409, reason: "protocol mismatch: load the current client" });
  } finally {
    await act(async () => root.unmount());
    await new Promise((resolve) => server.close(resolve));
  }
});
