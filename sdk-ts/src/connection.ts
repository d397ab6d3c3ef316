/**
 * The connection: one socket at a time, reconnected with backoff after an unexpected close, kept alive
 * with `$ping` heartbeats, and a bounded queue of frames written while no socket is open. It knows
 * nothing of what the frames mean; the client above it does.
 */

import { backoffDelay, closeCodePolicy, type CloseDecision, type ReconnectOptions } from "./backoff.js";
import { PING } from "./envelope.js";
import { WsClosedError, WsError, WsQueueFullError } from "./errors.js";
import type { InvalidFrame } from "./checked.js";
import type { SessionKeeper } from "./session.js";
import type { Validators } from "./validate.js";

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

/** Where the connection is. */
export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed";

/** How a connection ended: the close frame's code and reason. */
export interface CloseInfo {
  code: number;
  reason: string;
}

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
  /** Checks of the protocol's frames, from the generated `validate.ts` (the generated `createClient`
   * passes them). With them, a frame from the server that does not fit its type reaches no listener,
   * handler or request, and data given to `send` or `request` is checked before it leaves. `false` or
   * absent: frames are trusted. */
  validate?: Validators | false;
  /** Told of each frame that did not fit (default: `console.warn`). */
  onInvalid?: (invalid: InvalidFrame) => void;
  /** The protocol's fingerprint (the generated `PROTOCOL_FINGERPRINT`; the generated `createClient`
   * passes it), sent as the `ws_protocol` query parameter of every connection: a server that speaks
   * another version answers with `$error` `protocol_mismatch` (to `onError`) or closes with 3409. */
  protocol?: string;
  /** Fetches a credential (for example from the application's login API). With it, the client calls it
   * before each connection and sends the token as the `tokenParam` query parameter; when the server
   * announces the session's expiry it refreshes in-band (`$refresh`) `refreshMarginMs` before, without
   * reconnecting; after close 4001 ("token expired"), or a handshake refused with 3401 once, it fetches a
   * new token and connects again. One fetch runs at a time; a failed one is retried with backoff. A
   * refresh the server refuses (`unauthorized`, `forbidden`) ends the client for good (4001). */
  getToken?: () => Promise<string>;
  /** The query parameter the token travels in (default `token`). */
  tokenParam?: string;
  /** Refresh this long before the session expires, in ms (default 10 000), and never sooner than halfway
   * through its life. */
  refreshMarginMs?: number;
}

/** What the client above hears from its connection. */
export interface ConnectionEvents {
  /** A socket opened: `send` writes on it before anything queued or sent on open. */
  opened(send: (text: string) => void): void;
  /** A text frame arrived. */
  frame(text: string): void;
  /** The socket is gone (lost, or closed by the application): what was in flight cannot be trusted. */
  lost(error: WsClosedError): void;
}

const OPEN = 1;

export class Connection {
  state: ConnectionState = "connecting";
  /** Counts sockets opened, so an answer computed on one is not sent on the next. */
  generation = 0;
  /** Whether the client is closed for good: by the application, or by a close its reconnect policy does
   * not retry (3409, the 4000 range, ... see {@link closeCodePolicy}), or past `maxAttempts`. */
  closed = false;
  /** The close that ended the connection for good, when the server's (not the application's). */
  ended: CloseInfo | undefined;
  private socket: WebSocketLike | undefined;
  /** Frames waiting for a socket; a request's frame carries its id, so it leaves with the request. */
  private readonly queue: { text: string; id?: number }[] = [];
  private readonly stateListeners = new Set<(state: ConnectionState, close?: CloseInfo) => void>();
  private attempt = 0;
  private stableTimer: ReturnType<typeof setTimeout> | undefined;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  private lastSeen = 0;
  private pingSentAt = 0;
  private readonly WebSocketImpl: WebSocketConstructor;
  private readonly reconnect: Required<ReconnectOptions> | undefined;
  private readonly maxQueue: number;
  private readonly heartbeatIntervalMs: number;
  private readonly heartbeatTimeoutMs: number;
  private readonly random: () => number;
  private readonly protocol: string | undefined;
  private readonly tokenParam: string;
  /** Whether the next socket needs a new token first (the first one, and after the token was refused). */
  private needToken: boolean;
  /** Handshakes refused with 3401 in a row: a fresh token refused too ends the retries. */
  private tokenRefusals = 0;

  constructor(
    private readonly url: string | (() => string),
    options: ClientOptions,
    private readonly events: ConnectionEvents,
    private readonly tokens?: SessionKeeper,
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
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? 20_000;
    this.heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 10_000;
    this.random = options.random ?? Math.random;
    this.protocol = options.protocol;
    this.tokenParam = options.tokenParam ?? "token";
    this.needToken = tokens !== undefined;
    this.open();
  }

  /** Sends `text` now, or queues it until a socket opens. Throws {@link WsClosedError} once closed and
   * {@link WsQueueFullError} when the queue is full. */
  write(text: string, requestId?: number): void {
    if (this.closed) throw this.closedError();
    if (this.state === "open" && this.socket?.readyState === OPEN) {
      this.socket.send(text);
      return;
    }
    if (this.queue.length >= this.maxQueue) {
      throw new WsQueueFullError(`${this.maxQueue} frames are already waiting for a connection`);
    }
    this.queue.push(requestId === undefined ? { text } : { text, id: requestId });
  }

  /** Takes a settled request's frame out of the queue, so it is not sent after its caller gave up. */
  unqueue(id: number): void {
    const at = this.queue.findIndex((entry) => entry.id === id);
    if (at >= 0) this.queue.splice(at, 1);
  }

  onState(listener: (state: ConnectionState, close?: CloseInfo) => void): () => void {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }

  /** What a `send` or `request` after the end is refused with: it names the close that ended it. */
  closedError(): WsClosedError {
    const ended = this.ended;
    if (!ended) return new WsClosedError("the client is closed");
    const why = `${ended.code}${ended.reason ? `: ${ended.reason}` : ""}`;
    return new WsClosedError(`the connection ended for good (${why}); it is not reconnected`);
  }

  ready(): Promise<void> {
    if (this.state === "open") return Promise.resolve();
    if (this.state === "closed") return Promise.reject(this.closedError());
    return new Promise((resolve, reject) => {
      const stop = this.onState((state) => {
        if (state === "open") {
          stop();
          resolve();
        } else if (state === "closed") {
          stop();
          reject(this.closedError());
        }
      });
    });
  }

  /** Ends the client for good, naming `code` and `reason` (a refresh the server refused). */
  end(code: number, reason: string): void {
    if (this.closed) return;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.stableTimer);
    const socket = this.socket;
    this.dropSocket();
    socket?.close(1000, "");
    this.closed = true;
    this.ended = { code, reason };
    this.queue.length = 0;
    this.events.lost(this.closedError());
    this.setState("closed", { code, reason });
  }

  close(code = 1000, reason = ""): void {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.stableTimer);
    this.queue.length = 0;
    const socket = this.socket;
    this.dropSocket();
    socket?.close(code, reason);
    this.events.lost(new WsClosedError("the client is closed"));
    this.setState("closed", { code, reason });
  }

  private open(): void {
    if (this.tokens && this.needToken) {
      this.tokens.next().then(
        () => {
          if (this.closed) return;
          this.needToken = false;
          this.openSocket();
        },
        (error: unknown) => {
          if (this.closed) return;
          // No token, no connection: tried again like a connection that failed.
          this.retry("retry", { code: 1006, reason: `getToken failed: ${error instanceof Error ? error.message : String(error)}` });
        },
      );
      return;
    }
    this.openSocket();
  }

  private openSocket(): void {
    const socket = new this.WebSocketImpl(this.address());
    this.socket = socket;
    socket.onopen = () => {
      this.generation += 1;
      const stableAfter = this.reconnect?.stableAfterMs ?? 0;
      this.stableTimer = setTimeout(() => (this.attempt = 0), stableAfter);
      this.lastSeen = Date.now();
      this.pingSentAt = 0;
      this.events.opened((text) => socket.send(text));
      this.setState("open");
      this.startHeartbeat();
      for (const { text } of this.queue.splice(0)) socket.send(text);
    };
    socket.onmessage = (event) => {
      this.tokenRefusals = 0;
      this.lastSeen = Date.now();
      this.pingSentAt = 0;
      if (typeof event.data === "string") this.events.frame(event.data);
    };
    socket.onclose = (event) => this.lost(event.code, event.reason);
    socket.onerror = () => {
      // The close event that always follows says what happened.
    };
  }

  /** The URL of the next attempt: the application's, asking for refusals as close frames (a browser
   * shows a refused handshake only as 1006) and naming the protocol's fingerprint when there is one. */
  private address(): string {
    const url = typeof this.url === "function" ? this.url() : this.url;
    const [base = "", hash] = url.split("#", 2);
    const separator = base.includes("?") ? "&" : "?";
    const fingerprint = this.protocol === undefined ? "" : `&ws_protocol=${encodeURIComponent(this.protocol)}`;
    const token = this.tokens?.token;
    const credential = token === undefined ? "" : `&${encodeURIComponent(this.tokenParam)}=${encodeURIComponent(token)}`;
    const named = `${base}${separator}ws_refusal=close${fingerprint}${credential}`;
    return hash === undefined ? named : `${named}#${hash}`;
  }

  private lost(code: number, reason: string): void {
    this.dropSocket();
    clearTimeout(this.stableTimer);
    // The server discards what arrives after it starts closing, so in-flight requests cannot be trusted.
    this.events.lost(new WsClosedError(`connection closed (${code}${reason ? `: ${reason}` : ""})`));
    if (this.closed) return;
    const policy = this.reconnect;
    let decision = policy?.onClose(code) ?? "stop";
    if (policy && this.tokens && (code === 4001 || (code === 3401 && this.tokenRefusals === 0))) {
      // The token expired, or was refused: a new one may do.
      if (code === 3401) this.tokenRefusals += 1;
      this.needToken = true;
      decision = "retry";
    }
    this.retry(decision, { code, reason });
  }

  /** Opens again after the delay `decision` asks for, unless the policy says to stay closed. */
  private retry(decision: CloseDecision, close: CloseInfo): void {
    const policy = this.reconnect;
    if (!policy || decision === "stop" || this.attempt >= policy.maxAttempts) {
      // Final: what was queued and what is sent from now on fails at once, naming this close, rather than
      // waiting for a socket that will never open.
      this.closed = true;
      this.ended = close;
      this.queue.length = 0;
      this.setState("closed", close);
      return;
    }
    const delay = decision === "slow" ? policy.maxDelayMs : backoffDelay(this.attempt, policy, this.random);
    this.attempt += 1;
    this.setState("reconnecting", close);
    this.reconnectTimer = setTimeout(() => this.open(), delay);
  }

  /** Forgets the current socket without waiting for its close handshake. */
  private dropSocket(): void {
    clearInterval(this.heartbeatTimer);
    const socket = this.socket;
    if (!socket) return;
    socket.onopen = socket.onmessage = socket.onclose = null;
    // Closing a socket still connecting makes Node's `ws` emit an error, which must have a listener.
    socket.onerror = () => {};
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

  private setState(state: ConnectionState, close?: CloseInfo): void {
    this.state = state;
    for (const listener of this.stateListeners) listener(state, close);
  }
}
