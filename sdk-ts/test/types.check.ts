// Compile-time tests: every `@ts-expect-error` line must fail to type-check (tsc reports an unused
// directive otherwise), so wrong message names, wrong payloads and wrong replies are proven rejected.
// This file is type-checked by `tsc` and never run.
import type { Protocol } from "../../examples/chat/sdk/protocol.js";
import type { WsClient } from "../src/index.js";
import { createWsReact } from "../src/react.js";

export function typeChecks(client: WsClient<Protocol>): void {
  // Correct uses.
  client.send("chat", { text: "hi" });
  client.send("chat", { text: "hi", room: "rust" });
  client.send("join", { room: "rust" });
  void client.request("whoami");
  void client.request("whoami", null, { timeoutMs: 100 });
  void client.request("join", { room: "r" }).then((reply) => {
    const joined: boolean = reply.joined;
    return joined;
  });
  client.on("chat", (data, meta) => {
    const text: string = data.text;
    const from: string | undefined = meta.from;
    return [text, from];
  });
  client.handle("ask", (data) => ({ answer: data.question }));
  void (async () => {
    for await (const word of client.stream("assistant", { prompt: "hi" }, { signal: new AbortController().signal })) {
      const text: string = word.text;
      const index: number = word.index;
      // @ts-expect-error: an item is a `Word`, whose `text` is a string
      const wrong: number = word.text;
      void [text, index, wrong];
    }
  })();
  // @ts-expect-error: `join` is answered with a reply, not a stream
  void client.stream("join", { room: "r" });
  // @ts-expect-error: a stream's payload is checked like a message's
  void client.stream("assistant", { prompt: 1 });
  // @ts-expect-error: a stream is not a request
  void client.request("assistant", { prompt: "hi" });

  // @ts-expect-error: no such message type
  client.send("chatt", { text: "hi" });
  // @ts-expect-error: `text` must be a string
  client.send("chat", { text: 42 });
  // @ts-expect-error: `text` is required
  client.send("chat", { room: "rust" });
  // @ts-expect-error: `chat` carries a payload
  client.send("chat");
  // @ts-expect-error: `welcome` is a server message, the client cannot send it
  client.send("welcome", { client_id: "c", message: "m" });
  // @ts-expect-error: `chat` is not a request (it declares no reply)
  void client.request("chat", { text: "hi" });
  // @ts-expect-error: `whoami` takes no payload
  void client.request("whoami", { user: "x" });
  void client.request("whoami").then((me) => {
    // @ts-expect-error: the reply of `whoami` has no `purged`
    return me.purged;
  });
  // @ts-expect-error: the client never receives `join`
  client.on("join", () => {});
  client.on("dm", (data) => {
    // @ts-expect-error: a `dm` has no `room`
    return data.room;
  });
  // @ts-expect-error: an answer to `ask` needs `answer`
  client.handle("ask", () => ({ reply: "yes" }));
  // @ts-expect-error: `chat` from the server is not a request: nothing to handle
  client.handle("chat", () => ({}));
}

/** The React hooks are typed by the same protocol (never run: hooks outside a component). */
export function hookTypeChecks(): void {
  const { useMessage, useLastMessage, useRequest, usePresence } = createWsReact<Protocol>();
  useMessage("chat", (data) => {
    const text: string = data.text;
    return text;
  });
  const user: string | undefined = usePresence("room").members[0]?.meta.user;
  const joined: boolean | undefined = useRequest("join").data?.joined;
  void useRequest("join").run({ room: "r" });
  const last: string | undefined = useLastMessage("dm")?.data.text;
  void [user, joined, last];

  // @ts-expect-error: no such server message
  useMessage("chatt", () => {});
  // @ts-expect-error: `chat` is not a request
  useRequest("chat");
  // @ts-expect-error: `room` must be a string
  void useRequest("join").run({ room: 1 });
  // @ts-expect-error: a chat message has no `question`
  useMessage("chat", (data) => data.question);
}
