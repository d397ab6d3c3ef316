/**
 * The typed client: a facade over the {@link Connection} (socket, reconnect, heartbeat, offline queue),
 * the {@link Requests} in flight, and what is known per group ({@link Groups}), typed by the protocol
 * ws-codegen generates.
 */

import { Connection, type ClientOptions, type CloseInfo, type ConnectionState } from "./connection.js";
import { ERROR, HISTORY, PONG, POSITION, REPLY, parseEnvelope, type Envelope, type StreamPosition } from "./envelope.js";
import { Checked } from "./checked.js";
import type { WsClosedError, WsInvalidError, WsQueueFullError, WsRequestError, WsTimeoutError } from "./errors.js";
import { Group, Groups, type GroupHandle, type HistoryPage, type Recovery, type SystemRequests } from "./groups.js";
import { PRESENCE_DIFF, PRESENCE_STATE, type MetaOf, type PresenceView } from "./presence.js";
import type {
  DataArgs,
  DataOf,
  ItemOf,
  MessageMeta,
  ProtocolShape,
  ReplyOf,
  RequestArgs,
  RequestOptions,
  RequestTypeOf,
  StreamArgs,
  StreamOptions,
  StreamTypeOf,
  TypeOf,
} from "./protocol.js";
import { Requests, frame } from "./requests.js";
import { Streams } from "./streams.js";
import { LEFT, REFRESH, SESSION, SessionKeeper, type Left, type SessionExpiry } from "./session.js";

export type { ClientOptions, CloseInfo, ConnectionState, WebSocketConstructor, WebSocketLike } from "./connection.js";
export type { GroupHandle, HistoryPage, Recovery } from "./groups.js";
export type { InvalidFrame } from "./checked.js";
export type { Left } from "./session.js";

/** A typed client of one protocol `P` (the `Protocol` interface ws-codegen generates). */
export interface WsClient<P extends ProtocolShape> {
  /** The connection's state now. */
  readonly state: ConnectionState;
  /** Sends a message; queued while disconnected. Throws {@link WsQueueFullError} when the queue is full,
   * {@link WsClosedError} once the client is closed for good (by `close`, or by a close the reconnect
   * policy does not retry, such as 3409: the error names it), and {@link WsInvalidError} for data that
   * does not fit the type (with the protocol's validators). */
  send<K extends TypeOf<P["client"]>>(type: K, ...data: DataArgs<DataOf<P["client"], K>>): void;
  /** Sends a request and resolves with its typed reply; rejects with {@link WsRequestError} (`code`),
   * {@link WsTimeoutError}, {@link WsClosedError}, or {@link WsInvalidError} for data or a reply that does
   * not fit its type (with the protocol's validators). */
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
  /** One group as this client sees it: its position in the group's history, its presence list, its
   * `$history`, and the outcome of each join. */
  group(name: string): GroupHandle<MetaOf<P>>;
  /** The live member list of a group with presence (`group(name).presence()`). */
  presence(group: string): PresenceView<MetaOf<P>>;
  /** Listens to the outcome of each join of every group with history: after a lost connection, the SDK
   * sends its last positions first, and joining such a group again replays what was missed. */
  onRecovery(listener: (recovery: Recovery) => void): () => void;
  /** The last position seen in a group's history (`group(name).position()`). */
  position(group: string): StreamPosition | undefined;
  /** Reads a group's kept frames after offset `since` (`group(name).history(since)`). */
  history(group: string, since?: number): Promise<HistoryPage>;
  /** Listens to state changes (`open`, `reconnecting`, ...); returns a function that stops listening. */
  onState(listener: (state: ConnectionState, close?: CloseInfo) => void): () => void;
  /** Sends a request answered by a stream (a variant declared `#[ws(stream = T)]`) and returns its items
   * as they come, for `for await`. A lost connection is resumed by the client (each item once, in order);
   * `break` or `options.signal` cancels it, and the server stops producing. The loop throws
   * {@link WsRequestError} for the handler's error or a resume the server cannot serve (`expired`,
   * `not_found`), {@link WsInvalidError} for an item that does not fit the protocol's validators (the
   * stream is cancelled), {@link WsClosedError} when the connection went before the stream began or the
   * client closed for good, and {@link WsQueueFullError} past 1 024 items waiting for the loop. */
  stream<K extends StreamTypeOf<P["client"]>>(
    type: K,
    ...args: StreamArgs<DataOf<P["client"], K>>
  ): AsyncIterableIterator<ItemOf<P["client"], K>>;
  /** Listens to `$error` frames that answer no request (for example `invalid_data`). */
  onError(listener: (error: WsRequestError) => void): () => void;
  /** Listens to the server taking this client out of a group (`$left`): its membership ended
   * (`"expired"`), or a refreshed token no longer grants it (`"unauthorized"`). The group's presence list
   * is emptied first. */
  onLeft(listener: (left: Left) => void): () => void;
  /** Resolves once the connection is open. */
  ready(): Promise<void>;
  /** Closes for good: no reconnection; pending requests reject with {@link WsClosedError}. */
  close(code?: number, reason?: string): void;
}

/** Creates a client and starts connecting to `url` (a `ws://` or `wss://` URL, or a function giving one). */
export function createClient<P extends ProtocolShape>(url: string | (() => string), options: ClientOptions = {}): WsClient<P> {
  return new Client<P>(url, options);
}

class Client<P extends ProtocolShape> implements WsClient<P> {
  private readonly connection: Connection;
  private readonly requests: Requests;
  private readonly streams: Streams;
  private readonly groups = new Groups<MetaOf<P>>();
  private readonly listeners = new Map<string, Set<(data: unknown, meta: MessageMeta) => void>>();
  private readonly handlers = new Map<string, (data: unknown, meta: MessageMeta) => unknown>();
  private readonly errorListeners = new Set<(error: WsRequestError) => void>();
  private readonly leftListeners = new Set<(left: Left) => void>();
  private readonly checked: Checked;
  private readonly session: SessionKeeper | undefined;

  constructor(url: string | (() => string), options: ClientOptions) {
    const report = options.onInvalid ?? ((invalid) => console.warn("ws-core-client: invalid frame", invalid));
    this.checked = new Checked(options.validate || undefined, report);
    this.session =
      options.getToken &&
      new SessionKeeper(options.getToken, options.refreshMarginMs ?? 10_000, {
        refresh: (token) => this.requests.start<SessionExpiry>(REFRESH, { token }),
        generation: () => this.connection.generation,
        end: (reason) => this.connection.end(4001, reason),
      });
    const events = {
      // Before anything the application sends on open (its joins), so that joining again recovers.
      opened: (send: (text: string) => void) => {
        const positions = this.groups.positionsFrame();
        if (positions !== undefined) send(positions);
        for (const resume of this.streams.resumes()) send(resume);
      },
      frame: (text: string) => this.receive(text),
      lost: (error: WsClosedError) => {
        this.session?.stop();
        this.groups.reset();
        this.requests.failAll(error);
        this.streams.lost(error);
      },
    };
    this.connection = new Connection(url, options, events, this.session);
    this.requests = new Requests(
      this.connection,
      options.requestTimeoutMs ?? 10_000,
      options.maxPendingRequests ?? 1_000,
      (type, reply) => this.checked.reply(type, reply),
    );
    this.streams = new Streams(
      this.connection,
      () => this.requests.allocate(),
      (type, chunk) => this.checked.item(type, chunk),
    );
    this.connection.onState((state) => {
      if (state === "closed") this.streams.closeAll(this.connection.closedError());
    });
  }

  get state(): ConnectionState {
    return this.connection.state;
  }

  send<K extends TypeOf<P["client"]>>(type: K, ...data: DataArgs<DataOf<P["client"], K>>): void {
    const envelope = frame(type, data[0]);
    const invalid = this.checked.sent(envelope);
    if (invalid) throw invalid;
    this.connection.write(JSON.stringify(envelope));
  }

  request<K extends RequestTypeOf<P["client"]>>(
    type: K,
    ...args: RequestArgs<DataOf<P["client"], K>>
  ): Promise<ReplyOf<P["client"], K>> {
    const [data, options] = args as [unknown, RequestOptions | undefined];
    const invalid = this.checked.sent(frame(type, data));
    if (invalid) return Promise.reject(invalid);
    return this.requests.start<ReplyOf<P["client"], K>>(type, data, options?.timeoutMs);
  }

  stream<K extends StreamTypeOf<P["client"]>>(
    type: K,
    ...args: StreamArgs<DataOf<P["client"], K>>
  ): AsyncIterableIterator<ItemOf<P["client"], K>> {
    const [data, options] = args as [unknown, StreamOptions | undefined];
    const invalid = this.checked.sent(frame(type, data));
    if (invalid) throw invalid;
    return this.streams.open<ItemOf<P["client"], K>>(type, data, options);
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

  group(name: string): GroupHandle<MetaOf<P>> {
    return new Group(name, this.groups, (data) => this.system(HISTORY, data));
  }

  presence(group: string): PresenceView<MetaOf<P>> {
    return this.groups.presence(group);
  }

  onRecovery(listener: (recovery: Recovery) => void): () => void {
    return this.groups.onRecovery(listener);
  }

  position(group: string): StreamPosition | undefined {
    return this.groups.position(group);
  }

  history(group: string, since = 0): Promise<HistoryPage> {
    return this.group(group).history(since);
  }

  onState(listener: (state: ConnectionState, close?: CloseInfo) => void): () => void {
    return this.connection.onState(listener);
  }

  onError(listener: (error: WsRequestError) => void): () => void {
    this.errorListeners.add(listener);
    return () => this.errorListeners.delete(listener);
  }

  onLeft(listener: (left: Left) => void): () => void {
    this.leftListeners.add(listener);
    return () => this.leftListeners.delete(listener);
  }

  ready(): Promise<void> {
    return this.connection.ready();
  }

  close(code = 1000, reason = ""): void {
    this.connection.close(code, reason);
  }

  /** A request the SDK makes of the server itself, typed by {@link SystemRequests}. */
  private system<K extends keyof SystemRequests>(type: K, data: SystemRequests[K]["data"]): Promise<SystemRequests[K]["reply"]> {
    return this.requests.start<SystemRequests[K]["reply"]>(type, data);
  }

  private receive(text: string): void {
    const msg = parseEnvelope(text);
    if (!msg) return;
    if (this.streams.receive(msg)) return;
    if (msg.type === REPLY || msg.type === ERROR) {
      const unanswered = this.requests.answer(msg);
      if (unanswered) for (const listener of this.errorListeners) listener(unanswered);
      return;
    }
    if (msg.type === PONG) return;
    if (msg.type === SESSION) {
      this.session?.announced((msg.data ?? {}) as SessionExpiry);
      return;
    }
    if (msg.type === LEFT) {
      const left = (msg.data ?? {}) as Partial<Left>;
      if (typeof left.group !== "string") return;
      this.groups.presence(left.group).reset();
      const told: Left = { group: left.group, reason: String(left.reason ?? "") };
      for (const listener of this.leftListeners) listener(told);
      return;
    }
    if (msg.type === POSITION) {
      this.groups.positioned(msg.data as Recovery & Partial<StreamPosition>);
      return;
    }
    if (msg.pos && !this.groups.advance(msg.pos)) return;
    if (msg.type === PRESENCE_STATE || msg.type === PRESENCE_DIFF) {
      const data = (msg.data ?? {}) as { group?: unknown };
      if (typeof data.group === "string") this.groups.presence(data.group).apply(msg.type, data);
      return;
    }
    const invalid = this.checked.received(msg);
    const meta: MessageMeta = msg.from === undefined ? {} : { from: msg.from };
    const handler = this.handlers.get(msg.type);
    if (msg.id !== undefined) {
      const type = msg.type;
      // A request of the server is answered even when its data does not fit: with what the server itself
      // says of bad data.
      void this.answer(msg.id, type, () => {
        if (!handler) throw Object.assign(new Error(`no handler for "${type}"`), { code: "unknown_type" });
        if (invalid) throw invalid;
        return handler(msg.data ?? null, meta);
      });
      if (handler) return;
    }
    if (invalid) return;
    for (const listener of this.listeners.get(msg.type) ?? []) listener(msg.data ?? null, meta);
  }

  /** Answers a server request of `type` with what `run` gives, on the connection it came on. */
  private async answer(id: number, type: string, run: () => unknown): Promise<void> {
    const generation = this.connection.generation;
    let reply: Envelope;
    try {
      reply = { type: REPLY, id, data: (await run()) ?? null };
      const invalid = this.checked.answer(type, reply);
      if (invalid) throw invalid;
    } catch (error) {
      const code = typeof (error as { code?: unknown })?.code === "string" ? (error as { code: string }).code : "internal";
      const message = error instanceof Error ? error.message : String(error);
      reply = { type: ERROR, id, data: { code, message } };
    }
    // The request came on a connection that is gone: its id means nothing on another one.
    if (generation !== this.connection.generation || this.connection.state !== "open") return;
    try {
      this.connection.write(JSON.stringify(reply));
    } catch {
      // The client was closed meanwhile.
    }
  }
}
