// The chat in React: the same server and protocol as the plain page (`../app.ts`), written with the
// bindings of `ws-core-client/react` — a provider that owns the client, and typed hooks for the
// connection, messages, requests and presence. Built into `static/react.js` (served at `/react`).
import { type FormEvent, StrictMode, useEffect, useRef, useState } from "react";
import { createRoot } from "react-dom/client";
import { createWsReact } from "ws-core-client/react";
import { createClient } from "../../sdk/client.js";
import type { Protocol } from "../../sdk/protocol.js";
import { socketUrl, tokenFor } from "../token.js";

const { WsProvider, useClient, useConnection, useLastError, useMessage, useRequest, usePresence, useStream } =
  createWsReact<Protocol>();

/** One line of the log. */
interface Line {
  key: number;
  text: string;
  /** `own`: a line this user sent. */
  kind: "chat" | "own" | "system";
}

function Chat({ name }: { name: string }) {
  const client = useClient();
  const { state, close } = useConnection();
  const refused = useLastError();
  // The refusal shown is the one that came after the last send: sending again clears it.
  const [answered, setAnswered] = useState<unknown>();
  const [rooms, setRooms] = useState<string[]>([]);
  // Where a line goes: a room joined, or "" for everyone.
  const [target, setTarget] = useState("");
  const [draft, setDraft] = useState("");
  const [lines, setLines] = useState<Line[]>([]);
  const join = useRequest("join");
  const leave = useRequest("leave");
  const whoami = useRequest("whoami");
  const logList = useRef<HTMLUListElement>(null);
  const joined = useRef(rooms);
  joined.current = rooms;
  const log = (text: string, kind: Line["kind"]) =>
    setLines((all) => [...all.slice(-199), { key: (all.at(-1)?.key ?? 0) + 1, text, kind }]);

  useMessage("chat", (data) =>
    log(`${data.user}${data.room ? `#${data.room}` : ""}: ${data.text}`, data.user === name ? "own" : "chat"),
  );
  // A connection that comes back has forgotten its rooms: join them again.
  useEffect(() => {
    if (state === "open") for (const room of joined.current) join.run({ room }).catch(() => {});
  }, [state, join.run]);
  // The newest line stays in sight.
  useEffect(() => {
    const list = logList.current;
    if (list) list.scrollTop = list.scrollHeight;
  }, [lines]);

  const onJoin = (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const form = event.currentTarget;
    const room = new FormData(form).get("room");
    if (typeof room !== "string" || !room) return;
    join
      .run({ room })
      .then(() => {
        setRooms((all) => (all.includes(room) ? all : [...all, room]));
        setTarget(room);
        form.reset();
      })
      .catch(() => {});
  };
  const onLeave = (room: string) => {
    leave.run({ room }).catch(() => {});
    setRooms((all) => all.filter((r) => r !== room));
    setTarget((t) => (t === room ? "" : t));
    log(`you left #${room}`, "system");
  };
  const onSend = (event: FormEvent) => {
    event.preventDefault();
    if (!draft) return;
    try {
      client.send("chat", target ? { text: draft, room: target } : { text: draft });
      setAnswered(refused);
      setDraft("");
    } catch (error) {
      log(`not sent: ${error instanceof Error ? error.message : String(error)}`, "system");
    }
  };
  return (
    <main>
      <h1>ws-core chat, in React</h1>
      <p id="status">{status(state, name, close, refused?.code)}</p>
      <form id="join" onSubmit={onJoin}>
        <input name="room" placeholder="room" />
        <button disabled={join.loading}>Join</button>
      </form>
      {join.error && <p id="join-error">cannot join: {join.error.message}</p>}
      <ul id="rooms">
        {rooms.map((room) => (
          <Room key={room} room={room} onLeave={onLeave} />
        ))}
      </ul>
      <form id="send" onSubmit={onSend}>
        <select id="target" value={target} onChange={(e) => setTarget(e.target.value)}>
          <option value="">everyone</option>
          {rooms.map((room) => (
            <option key={room} value={room}>
              #{room}
            </option>
          ))}
        </select>
        <input value={draft} onChange={(e) => setDraft(e.target.value)} placeholder="message" />
        <button>Send</button> <span id="refused">{refused && refused !== answered && refused.code !== "protocol_mismatch" ? refused.message : ""}</span>
      </form>
      <p>
        <button id="whoami" onClick={() => void whoami.run().catch(() => {})} disabled={whoami.loading}>
          Who am I?
        </button>{" "}
        <span id="me">{whoami.loading ? "asking…" : whoami.data ? `${whoami.data.user} (${whoami.data.groups.join(", ") || "no rooms"})` : ""}</span>
      </p>
      <Assistant />
      <ul id="log" ref={logList}>
        {lines.map((line) => (
          <li key={line.key} className={line.kind}>
            {line.text}
          </li>
        ))}
      </ul>
    </main>
  );
}

/** The assistant: its answer streams in word by word (`useStream`), and goes on where it broke after a
 * lost connection. */
function Assistant() {
  const answer = useStream("assistant");
  const [prompt, setPrompt] = useState("");
  return (
    <>
      <form
        id="assistant"
        onSubmit={(event) => {
          event.preventDefault();
          if (prompt.trim()) answer.start({ prompt });
        }}
      >
        <input id="prompt" value={prompt} onChange={(e) => setPrompt(e.target.value)} placeholder="ask the assistant" />
        <button>Ask</button>{" "}
        <button type="button" className="secondary" id="stop" onClick={answer.cancel}>
          Stop
        </button>
      </form>
      <p id="answer" data-state={answer.state} data-words={answer.items.length}>
        {answer.items.map((word) => word.text).join("")}
      </p>
      {answer.error && <p id="assistant-error">the assistant could not answer: {answer.error.message}</p>}
    </>
  );
}

/** A room joined: who is in it (the server's presence list), and a way out. */
function Room({ room, onLeave }: { room: string; onLeave: (room: string) => void }) {
  const { members } = usePresence(room);
  return (
    <li data-room={room}>
      <span className="members">
        #{room}: {members.map((m) => m.meta.user).sort().join(", ")}
      </span>{" "}
      <button className="secondary" onClick={() => onLeave(room)}>
        Leave
      </button>
    </li>
  );
}

/** What the status line says: who is connected, or why not. A client of another protocol version is told
 * to reload, the only cure; a refused handshake (3000 + its HTTP status) says the status and the server's
 * reason. */
function status(state: string, name: string, close: { code: number; reason: string } | undefined, error?: string) {
  if (error === "protocol_mismatch" || close?.code === 3409) return "a new version is available — reload the page";
  if (state === "open") return `connected as ${name}`;
  if (!close) return state;
  const reason = close.reason ? `: ${close.reason}` : "";
  if (close.code >= 3400 && close.code <= 3599) return `${state}: refused by the server (HTTP ${close.code - 3000}${reason})`;
  return `${state} (${close.code}${reason})`;
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
  return (
    <WsProvider connect={() => createClient(socketUrl(), { getToken: () => tokenFor(name) })} fallback={<p>connecting…</p>}>
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
