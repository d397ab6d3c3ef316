// The chat in React: the same server and protocol as the plain page (`../app.ts`), written with the
// bindings of `ws-core-client/react` — a provider that owns the client, and typed hooks for the
// connection, messages, requests and presence. Built into `static/react.js` (served at `/react`).
import { type FormEvent, StrictMode, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { createWsReact } from "ws-core-client/react";
import { createClient } from "../../sdk/client.js";
import type { Protocol } from "../../sdk/protocol.js";

const { WsProvider, useClient, useConnection, useLastError, useMessage, useRequest, usePresence } =
  createWsReact<Protocol>();

/** One line of the log. */
interface Line {
  key: number;
  text: string;
  kind: "chat" | "system";
}

function Chat({ name }: { name: string }) {
  const client = useClient();
  const { state, close } = useConnection();
  const refused = useLastError();
  // The refusal shown is the one that came after the last send: sending again clears it.
  const [answered, setAnswered] = useState<unknown>();
  const [room, setRoom] = useState<string>();
  const [draft, setDraft] = useState("");
  const [lines, setLines] = useState<Line[]>([]);
  const join = useRequest("join");
  const whoami = useRequest("whoami");
  const members = usePresence(room ?? "");
  const log = (text: string, kind: Line["kind"]) =>
    setLines((all) => [...all.slice(-199), { key: (all.at(-1)?.key ?? 0) + 1, text, kind }]);

  useMessage("chat", (data) => log(`${data.user}${data.room ? `#${data.room}` : ""}: ${data.text}`, "chat"));
  // A connection that comes back has forgotten its rooms: join again.
  useEffect(() => {
    if (state === "open" && room) join.run({ room }).catch(() => {});
  }, [state, room, join.run]);

  const onJoin = (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const field = new FormData(event.currentTarget).get("room");
    if (typeof field === "string" && field) setRoom(field);
  };
  const onSend = (event: FormEvent) => {
    event.preventDefault();
    if (!draft) return;
    client.send("chat", room ? { text: draft, room } : { text: draft });
    setAnswered(refused);
    setDraft("");
  };
  return (
    <main>
      <h1>ws-core chat, in React</h1>
      <p id="status">
        {status(state, name, close, refused?.code)}
        {state === "open" && join.data ? ` · in #${join.data.room}` : ""}
      </p>
      <form id="join" onSubmit={onJoin}>
        <input name="room" placeholder="room" />
        <button>Join</button>
      </form>
      {room && (
        <p id="members">
          #{room}: {members.members.map((m) => m.meta.user).sort().join(", ")}
        </p>
      )}
      <form id="send" onSubmit={onSend}>
        <input value={draft} onChange={(e) => setDraft(e.target.value)} placeholder="message" />
        <button>Send</button> <span id="refused">{refused && refused !== answered && refused.code !== "protocol_mismatch" ? refused.message : ""}</span>
      </form>
      <p>
        <button id="whoami" onClick={() => void whoami.run().catch(() => {})} disabled={whoami.loading}>
          Who am I?
        </button>{" "}
        <span id="me">{whoami.loading ? "asking…" : whoami.data ? `${whoami.data.user} (${whoami.data.groups.join(", ") || "no rooms"})` : ""}</span>
      </p>
      <ul id="log">
        {lines.map((line) => (
          <li key={line.key} className={line.kind}>
            {line.text}
          </li>
        ))}
      </ul>
    </main>
  );
}

/** What the status line says: who is connected, or why not (a client of another protocol version is told
 * to reload, the only cure). */
function status(state: string, name: string, close: { code: number; reason: string } | undefined, error?: string) {
  if (error === "protocol_mismatch" || close?.code === 3409) return "a new version is available — reload the page";
  if (state === "open") return `connected as ${name}`;
  if (!close) return state;
  return `${state} (${close.code}${close.reason ? `: ${close.reason}` : ""})`;
}

function App() {
  const [name, setName] = useState<string>();
  if (!name) {
    return (
      <main>
        <h1>ws-core chat, in React</h1>
        <form
          id="login"
          onSubmit={(event) => {
            event.preventDefault();
            const field = new FormData(event.currentTarget).get("name");
            if (typeof field === "string" && field) setName(field);
          }}
        >
          <input name="name" placeholder="your name" />
          <button>Log in</button>
        </form>
      </main>
    );
  }
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws?token=${encodeURIComponent(name)}`;
  return (
    <WsProvider connect={() => createClient(url)} fallback={<p>connecting…</p>}>
      <Chat name={name} />
    </WsProvider>
  );
}

const root = document.getElementById("root");
if (root) {
  createRoot(root).render(
    <StrictMode>
      <App />
    </StrictMode>,
  );
}
