import { backoffDelay, closeCodePolicy, type ReconnectOptions } from "./backoff.js";
import {
  ERROR,
  MAX_REQUEST_ID,
  PING,
  PONG,
  HISTORY,
  POSITION,
  POSITIONS,
  REPLY,
  parseEnvelope,
  type Envelope,
  type StreamPosition,
} from "./envelope.js";
import { WsClosedError, WsError, WsQueueFullError, WsRequestError, WsTimeoutError } from "./errors.js";
import { PRESENCE_DIFF, PRESENCE_STATE, Presence, type MetaOf, type PresenceView } from "./presence.js";
import type {
  DataArgs,
  DataOf,
  MessageMeta,
  ProtocolShape,
  ReplyOf,
  RequestArgs,
  RequestOptions,
  RequestTypeOf,
  TypeOf,
} from "./protocol.js";

/** The subset of the standard `WebSocket` this client uses (browsers' and the `ws` package's both fit). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

/** A `WebSocket` constructor: the global one in browsers, `ws`'s `WebSocket` in Node 20. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** What joining a group with history gave: `recovered` is `true` when every frame missed while away
 * follows (in order, none twice), `false` when some are gone (`reason`: `expired`, `epoch` or
 * `unavailable`: fetch the state another way), and absent on a first join. */
export interface Recovery {
  group: string;
  recovered?: boolean;
  reason?: string;
}

/** A group's kept frames, as `history` returns them. */
export interface HistoryPage {
  group: string;
  epoch: string;
  /** The offset of the group's last frame. */
  offset: number;
  /** Whether every frame after the requested offset is in `frames` (none was pushed out). */
  complete: boolean;
  /** The frames, oldest first, each with its `pos`. */
  frames: Envelope[];
}

/** Positions kept, one per group (the oldest goes first past it). */
const MAX_POSITIONS = 256;

/** Where the connection is. */
export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed";

/** Options of {@link createClient}. */
export interface ClientOptions {
  /** The WebSocket implementation (default: `globalThis.WebSocket`). */
  WebSocket?: WebSocketConstructor;
  /** Reconnect after an unexpected close (default: on, with the defaults of {@link ReconnectOptions}). */
  reconnect?: boolean | ReconnectOptions;
  /** Frames kept while disconnected, sent on (re)connection (default 100); past it `send` throws. */
  maxQueue?: number;
  /** Default request timeout in milliseconds (default 10 000). */
  requestTimeoutMs?: number;
  /** Requests waiting for an answer at once (default 1 000). */
  maxPendingRequests?: number;
  /** Send `$ping` after this long without any frame from the server, in ms (default 20 000; 0: never). */
  heartbeatIntervalMs?: number;
  /** Drop the connection when nothing arrives this long after a `$ping`, in ms (default 10 000). */
  heartbeatTimeoutMs?: number;
  /** Random numbers in [0, 1) for the backoff jitter (default `Math.random`). */
  random?: () => number;
}

/** A typed client of one protocol `P` (the `Protocol` interface ws-codegen generates). */
export interface WsClient<P extends ProtocolShape> {
  /** The connection's state now. */
  readonly state: ConnectionState;
  /** Sends a message; queued while disconnected. Throws {@link WsQueueFullError} when the queue is full. */
  send<K extends TypeOf<P["client"]>>(type: K, ...data: DataArgs<DataOf<P["client"], K>>): void;
  /** Sends a request and resolves with its typed reply; rejects with {@link WsRequestError} (`code`),
   * {@link WsTimeoutError} or {@link WsClosedError}. */
  request<K extends RequestTypeOf<P["client"]>>(
    type: K,
    ...args: RequestArgs<DataOf<P["client"], K>>
  ): Promise<ReplyOf<P["client"], K>>;
  /** Listens to one message type; returns a function that stops listening. */
  on<K extends TypeOf<P["server"]>>(
    type: K,
    listener: (data: DataOf<P["server"], K>, meta: MessageMeta) => void,
  ): () => void;
  /** Answers the server's requests of one type; a thrown error becomes `$error` (code from `error.code`, else
   * `internal`). A server request of a type with no handler is answered at once with `$error` `unknown_type`.
   * An answer that is ready only after its connection was lost is dropped: it would reach another connection. */
  handle<K extends RequestTypeOf<P["server"]>>(
    type: K,
    handler: (data: DataOf<P["server"], K>, meta: MessageMeta) => ReplyOf<P["server"], K> | Promise<ReplyOf<P["server"], K>>,
  ): () => void;
  /** The live member list of a group with presence (empty until this client joins it and the server's
   * `$presence_state` arrives); emptied when the connection is lost, filled again when the group is joined
   * again. */
  presence(group: string): PresenceView<MetaOf<P>>;
  /** Listens to the outcome of each join of a group with history: after a lost connection, the SDK sends
   * its last positions first, and joining such a group again replays what was missed. */
  onRecovery(listener: (recovery: Recovery) => void): () => void;
  /** The last position seen in a group's history. */
  position(group: string): StreamPosition | undefined;
  /** Reads a group's kept frames after offset `since` (default: every kept frame); members only
   * (`forbidden` otherwise, `not_found` for a group without history). */
  history(group: string, since?: number): Promise<HistoryPage>;
  /** Listens to state changes (`open`, `reconnecting`, ...); returns a function that stops listening. */
  onState(listener: (state: ConnectionState, close?: { code: number; reason: string }) => void): () => void;
  /** Listens to `$error` frames that answer no request (for example `invalid_data`). */
  onError(listener: (error: WsRequestError) => void): () => void;
  /** Resolves once the connection is open. */
  ready(): Promise<void>;
  /** Closes for good: no reconnection; pending requests reject with {@link WsClosedError}. */
  close(code?: number, reason?: string): void;
}

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

const OPEN = 1;

/** Creates a client and starts connecting to `url` (a `ws://` or `wss://` URL, or a function giving one). */
export function createClient<P extends ProtocolShape>(url: string | (() => string), options: ClientOptions = {}): WsClient<P> {
  return new Client<P>(url, options);
}

class Client<P extends ProtocolShape> implements WsClient<P> {
  state: ConnectionState = "connecting";
  private socket: WebSocketLike | undefined;
  /** Frames waiting for a connection; a request's frame carries its id, so it leaves with the request. */
  private readonly queue: { text: string; id?: number }[] = [];
  private readonly pending = new Map<number, Pending>();
  private readonly listeners = new Map<string, Set<(data: unknown, meta: MessageMeta) => void>>();
  private readonly handlers = new Map<string, (data: unknown, meta: MessageMeta) => unknown>();
  private readonly stateListeners = new Set<(state: ConnectionState, close?: { code: number; reason: string }) => void>();
  private readonly errorListeners = new Set<(error: WsRequestError) => void>();
  /** Member lists by group: one per group asked for or told about (the server bounds a client's groups). */
  private readonly presences = new Map<string, Presence<MetaOf<P>>>();
  /** The last position seen per group with history; frames at or before it are duplicates. */
  private readonly positions = new Map<string, StreamPosition>();
  private readonly recoveryListeners = new Set<(recovery: Recovery) => void>();
  private nextId = 1;
  private attempt = 0;
  /** Counts connections, so an answer computed on one is not sent on the next. */
  private generation = 0;
  private stableTimer: ReturnType<typeof setTimeout> | undefined;
  private closedByUser = false;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  private lastSeen = 0;
  private pingSentAt = 0;
  private readonly WebSocketImpl: WebSocketConstructor;
  private readonly reconnect: Required<ReconnectOptions> | undefined;
  private readonly maxQueue: number;
  private readonly requestTimeoutMs: number;
  private readonly maxPendingRequests: number;
  private readonly heartbeatIntervalMs: number;
  private readonly heartbeatTimeoutMs: number;
  private readonly random: () => number;

  constructor(
    private readonly url: string | (() => string),
    options: ClientOptions,
  ) {
    const impl = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!impl) throw new WsError("no WebSocket implementation: pass options.WebSocket (for example `ws` in Node)");
    this.WebSocketImpl = impl;
    const reconnect = options.reconnect ?? true;
    this.reconnect =
      reconnect === false
        ? undefined
        : {
            baseDelayMs: 250,
            maxDelayMs: 10_000,
            maxAttempts: Number.POSITIVE_INFINITY,
            stableAfterMs: 5_000,
            onClose: closeCodePolicy,
            ...(reconnect === true ? {} : reconnect),
          };
    this.maxQueue = options.maxQueue ?? 100;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.maxPendingRequests = options.maxPendingRequests ?? 1_000;
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? 20_000;
    this.heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 10_000;
    this.random = options.random ?? Math.random;
    this.connect();
  }

  send<K extends TypeOf<P["client"]>>(type: K, ...data: DataArgs<DataOf<P["client"], K>>): void {
    this.write(frame(type, data[0]));
  }

  request<K extends RequestTypeOf<P["client"]>>(
    type: K,
    ...args: RequestArgs<DataOf<P["client"], K>>
  ): Promise<ReplyOf<P["client"], K>> {
    const [data, options] = args as [unknown, RequestOptions | undefined];
    if (this.closedByUser) return Promise.reject(new WsClosedError("the client is closed"));
    if (this.pending.size >= this.maxPendingRequests) {
      return Promise.reject(new WsQueueFullError(`${this.maxPendingRequests} requests are already waiting`));
    }
    const id = this.nextId;
    this.nextId = this.nextId >= MAX_REQUEST_ID ? 1 : this.nextId + 1;
    const timeoutMs = options?.timeoutMs ?? this.requestTimeoutMs;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.settle(id, (p) => p.reject(new WsTimeoutError(`no answer to "${type}" within ${timeoutMs} ms`)));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject, timer });
      try {
        this.write({ ...frame(type, data), id }, id);
      } catch (error) {
        this.settle(id, (p) => p.reject(error as Error));
      }
    });
  }

  on<K extends TypeOf<P["server"]>>(type: K, listener: (data: DataOf<P["server"], K>, meta: MessageMeta) => void): () => void {
    let set = this.listeners.get(type);
    if (!set) this.listeners.set(type, (set = new Set()));
    const entry = listener as (data: unknown, meta: MessageMeta) => void;
    set.add(entry);
    return () => set.delete(entry);
  }

  handle<K extends RequestTypeOf<P["server"]>>(
    type: K,
    handler: (data: DataOf<P["server"], K>, meta: MessageMeta) => ReplyOf<P["server"], K> | Promise<ReplyOf<P["server"], K>>,
  ): () => void {
    const entry = handler as (data: unknown, meta: MessageMeta) => unknown;
    this.handlers.set(type, entry);
    return () => {
      if (this.handlers.get(type) === entry) this.handlers.delete(type);
    };
  }

  onState(listener: (state: ConnectionState, close?: { code: number; reason: string }) => void): () => void {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }

  onError(listener: (error: WsRequestError) => void): () => void {
    this.errorListeners.add(listener);
    return () => this.errorListeners.delete(listener);
  }

  ready(): Promise<void> {
    if (this.state === "open") return Promise.resolve();
    if (this.state === "closed") return Promise.reject(new WsClosedError("the client is closed"));
    return new Promise((resolve, reject) => {
      const stop = this.onState((state) => {
        if (state === "open") {
          stop();
          resolve();
        } else if (state === "closed") {
          stop();
          reject(new WsClosedError("the client is closed"));
        }
      });
    });
  }

  close(code = 1000, reason = ""): void {
    this.closedByUser = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.stableTimer);
    this.queue.length = 0;
    const socket = this.socket;
    this.dropSocket();
    socket?.close(code, reason);
    this.failPending(new WsClosedError("the client is closed"));
    for (const view of this.presences.values()) view.reset();
    this.setState("closed", { code, reason });
  }

  private connect(): void {
    const socket = new this.WebSocketImpl(typeof this.url === "function" ? this.url() : this.url);
    this.socket = socket;
    socket.onopen = () => {
      this.generation += 1;
      const stableAfter = this.reconnect?.stableAfterMs ?? 0;
      this.stableTimer = setTimeout(() => (this.attempt = 0), stableAfter);
      this.lastSeen = Date.now();
      this.pingSentAt = 0;
      // Before anything the application sends on open (its joins), so that joining again recovers.
      if (this.positions.size > 0) {
        socket.send(JSON.stringify({ type: POSITIONS, data: Object.fromEntries(this.positions) }));
      }
      this.setState("open");
      this.startHeartbeat();
      for (const { text } of this.queue.splice(0)) socket.send(text);
    };
    socket.onmessage = (event) => {
      this.lastSeen = Date.now();
      this.pingSentAt = 0;
      if (typeof event.data === "string") this.receive(event.data);
    };
    socket.onclose = (event) => this.lost(event.code, event.reason);
    socket.onerror = () => {
      // The close event that always follows says what happened.
    };
  }

  private receive(text: string): void {
    const msg = parseEnvelope(text);
    if (!msg) return;
    if (msg.type === REPLY || msg.type === ERROR) {
      const pending = msg.id === undefined ? undefined : this.pending.get(msg.id);
      if (msg.type === ERROR) {
        const body = (msg.data ?? {}) as { code?: unknown; message?: unknown };
        const error = new WsRequestError(String(body.code ?? "unknown"), String(body.message ?? ""));
        if (pending) this.settle(msg.id as number, (p) => p.reject(error));
        else for (const listener of this.errorListeners) listener(error);
      } else if (pending) {
        this.settle(msg.id as number, (p) => p.resolve(msg.data ?? null));
      }
      return;
    }
    if (msg.type === PONG) return;
    if (msg.type === POSITION) {
      this.positioned(msg.data as Recovery & Partial<StreamPosition>);
      return;
    }
    if (msg.pos && !this.advance(msg.pos)) return;
    if (msg.type === PRESENCE_STATE || msg.type === PRESENCE_DIFF) {
      const data = (msg.data ?? {}) as { group?: unknown };
      if (typeof data.group === "string") this.presenceOf(data.group).apply(msg.type, data);
      return;
    }
    const meta: MessageMeta = msg.from === undefined ? {} : { from: msg.from };
    const handler = this.handlers.get(msg.type);
    if (msg.id !== undefined) {
      const type = msg.type;
      void this.answer(msg.id, () => {
        if (!handler) throw Object.assign(new Error(`no handler for "${type}"`), { code: "unknown_type" });
        return handler(msg.data ?? null, meta);
      });
      if (handler) return;
    }
    for (const listener of this.listeners.get(msg.type) ?? []) listener(msg.data ?? null, meta);
  }

  private async answer(id: number, run: () => unknown): Promise<void> {
    const generation = this.generation;
    let reply: Envelope;
    try {
      reply = { type: REPLY, id, data: (await run()) ?? null };
    } catch (error) {
      const code = typeof (error as { code?: unknown })?.code === "string" ? (error as { code: string }).code : "internal";
      const message = error instanceof Error ? error.message : String(error);
      reply = { type: ERROR, id, data: { code, message } };
    }
    // The request came on a connection that is gone: its id means nothing on another one.
    if (generation !== this.generation || this.state !== "open") return;
    try {
      this.write(reply);
    } catch {
      // The client was closed meanwhile.
    }
  }

  private settle(id: number, action: (pending: Pending) => void): void {
    const pending = this.pending.get(id);
    if (!pending) return;
    clearTimeout(pending.timer);
    this.pending.delete(id);
    this.unqueue(id);
    action(pending);
  }

  /** Takes a settled request's frame out of the queue, so it is not sent after its caller gave up. */
  private unqueue(id: number): void {
    const at = this.queue.findIndex((entry) => entry.id === id);
    if (at >= 0) this.queue.splice(at, 1);
  }

  private write(envelope: Envelope, requestId?: number): void {
    if (this.closedByUser) throw new WsClosedError("the client is closed");
    const text = JSON.stringify(envelope);
    if (this.state === "open" && this.socket?.readyState === OPEN) {
      this.socket.send(text);
      return;
    }
    if (this.queue.length >= this.maxQueue) {
      throw new WsQueueFullError(`${this.maxQueue} frames are already waiting for a connection`);
    }
    this.queue.push(requestId === undefined ? { text } : { text, id: requestId });
  }

  /** Records a frame's position; `false` for a frame already seen (replayed and also delivered live). */
  private advance(pos: StreamPosition & { group: string }): boolean {
    const known = this.positions.get(pos.group);
    if (known && known.epoch === pos.epoch && pos.offset <= known.offset) return false;
    this.remember(pos.group, { epoch: pos.epoch, offset: pos.offset });
    return true;
  }

  private remember(group: string, position: StreamPosition): void {
    this.positions.delete(group);
    this.positions.set(group, position);
    if (this.positions.size > MAX_POSITIONS) {
      const oldest = this.positions.keys().next().value;
      if (oldest !== undefined) this.positions.delete(oldest);
    }
  }

  /** A `$position`: after a complete recovery the replayed frames follow and move the position; otherwise
   * the client starts from the history's current end. */
  private positioned(data: Recovery & Partial<StreamPosition>): void {
    if (typeof data.group !== "string") return;
    if (data.recovered !== true && typeof data.epoch === "string" && typeof data.offset === "number") {
      this.remember(data.group, { epoch: data.epoch, offset: data.offset });
    } else if (data.recovered !== true) {
      this.positions.delete(data.group);
    }
    const recovery: Recovery = { group: data.group };
    if (data.recovered !== undefined) recovery.recovered = data.recovered;
    if (data.reason !== undefined) recovery.reason = data.reason;
    for (const listener of this.recoveryListeners) listener(recovery);
  }

  onRecovery(listener: (recovery: Recovery) => void): () => void {
    this.recoveryListeners.add(listener);
    return () => this.recoveryListeners.delete(listener);
  }

  history(group: string, since = 0): Promise<HistoryPage> {
    const call = this.request as unknown as (type: string, data: unknown) => Promise<HistoryPage>;
    return call.call(this, HISTORY, { group, since });
  }

  position(group: string): StreamPosition | undefined {
    const known = this.positions.get(group);
    return known && { ...known };
  }

  private presenceOf(group: string): Presence<MetaOf<P>> {
    let view = this.presences.get(group);
    if (!view) {
      view = new Presence<MetaOf<P>>(group);
      this.presences.set(group, view);
    }
    return view;
  }

  presence(group: string): PresenceView<MetaOf<P>> {
    return this.presenceOf(group);
  }

  private lost(code: number, reason: string): void {
    this.dropSocket();
    for (const view of this.presences.values()) view.reset();
    clearTimeout(this.stableTimer);
    // The server discards what arrives after it starts closing, so in-flight requests cannot be trusted.
    this.failPending(new WsClosedError(`connection closed (${code}${reason ? `: ${reason}` : ""})`));
    if (this.closedByUser) return;
    const policy = this.reconnect;
    const decision = policy?.onClose(code) ?? "stop";
    if (!policy || decision === "stop" || this.attempt >= policy.maxAttempts) {
      this.queue.length = 0;
      this.setState("closed", { code, reason });
      return;
    }
    const delay = decision === "slow" ? policy.maxDelayMs : backoffDelay(this.attempt, policy, this.random);
    this.attempt += 1;
    this.setState("reconnecting", { code, reason });
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  /** Forgets the current socket without waiting for its close handshake. */
  private dropSocket(): void {
    clearInterval(this.heartbeatTimer);
    const socket = this.socket;
    if (!socket) return;
    socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
    this.socket = undefined;
  }

  private startHeartbeat(): void {
    if (this.heartbeatIntervalMs <= 0) return;
    const tick = Math.max(10, Math.min(this.heartbeatIntervalMs, this.heartbeatTimeoutMs) / 2);
    this.heartbeatTimer = setInterval(() => {
      const now = Date.now();
      if (this.pingSentAt && now - this.pingSentAt >= this.heartbeatTimeoutMs) {
        // Nothing came back: the connection is dead even if the socket has not noticed.
        const socket = this.socket;
        this.dropSocket();
        socket?.close(4000, "heartbeat timeout");
        this.lost(1006, "heartbeat timeout");
      } else if (!this.pingSentAt && now - this.lastSeen >= this.heartbeatIntervalMs) {
        this.pingSentAt = now;
        this.socket?.send(JSON.stringify({ type: PING }));
      }
    }, tick);
  }

  private failPending(error: Error): void {
    for (const id of [...this.pending.keys()]) this.settle(id, (p) => p.reject(error));
  }

  private setState(state: ConnectionState, close?: { code: number; reason: string }): void {
    this.state = state;
    for (const listener of this.stateListeners) listener(state, close);
  }
}

function frame(type: string, data: unknown): Envelope {
  return data === undefined || data === null ? { type } : { type, data };
}
