/**
 * Requests in flight: ids (1 up to 2^53 − 1, then 1 again), timeouts, a bound on how many wait at once,
 * and their answers (`$reply`, `$error`) matched by id.
 */

import type { Connection } from "./connection.js";
import { ERROR, MAX_REQUEST_ID, REPLY, type Envelope } from "./envelope.js";
import { WsQueueFullError, WsRequestError, WsTimeoutError } from "./errors.js";

interface Pending {
  /** The request's type, to check its reply against. */
  type: string;
  resolve(value: unknown): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

export class Requests {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  constructor(
    private readonly connection: Connection,
    private readonly timeoutMs: number,
    private readonly maxPending: number,
    /** The error a reply to a request of `type` is rejected with, when it does not fit its type. */
    private readonly checkReply: (type: string, reply: Envelope) => Error | undefined,
  ) {}

  /** Sends request `type` with `data` and resolves with the answer's data, as `T`. */
  start<T>(type: string, data: unknown, timeoutMs = this.timeoutMs): Promise<T> {
    if (this.connection.closed) return Promise.reject(this.connection.closedError());
    if (this.pending.size >= this.maxPending) {
      return Promise.reject(new WsQueueFullError(`${this.maxPending} requests are already waiting`));
    }
    const id = this.allocate();
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.settle(id, (p) => p.reject(new WsTimeoutError(`no answer to "${type}" within ${timeoutMs} ms`)));
      }, timeoutMs);
      this.pending.set(id, { type, resolve: resolve as (value: unknown) => void, reject, timer });
      try {
        this.connection.write(JSON.stringify({ ...frame(type, data), id }), id);
      } catch (error) {
        this.settle(id, (p) => p.reject(error as Error));
      }
    });
  }

  /** A fresh id (1 up to 2^53 − 1, then 1 again): requests and streams share them. */
  allocate(): number {
    const id = this.nextId;
    this.nextId = this.nextId >= MAX_REQUEST_ID ? 1 : this.nextId + 1;
    return id;
  }

  /** Settles the request a `$reply` or `$error` answers; returns an `$error` that answers none. */
  answer(msg: Envelope): WsRequestError | undefined {
    const waiting = msg.id !== undefined && this.pending.has(msg.id);
    if (msg.type === ERROR) {
      const body = (msg.data ?? {}) as { code?: unknown; message?: unknown };
      const error = new WsRequestError(String(body.code ?? "unknown"), String(body.message ?? ""));
      if (!waiting) return error;
      this.settle(msg.id as number, (p) => p.reject(error));
    } else if (msg.type === REPLY && waiting) {
      this.settle(msg.id as number, (p) => {
        const invalid = this.checkReply(p.type, msg);
        if (invalid) p.reject(invalid);
        else p.resolve(msg.data ?? null);
      });
    }
    return undefined;
  }

  /** Rejects every request in flight with `error`. */
  failAll(error: Error): void {
    for (const id of [...this.pending.keys()]) this.settle(id, (p) => p.reject(error));
  }

  private settle(id: number, action: (pending: Pending) => void): void {
    const pending = this.pending.get(id);
    if (!pending) return;
    clearTimeout(pending.timer);
    this.pending.delete(id);
    this.connection.unqueue(id);
    action(pending);
  }
}

/** The envelope of a message: `data` left out when there is none. */
export function frame(type: string, data: unknown): Envelope {
  return data === undefined || data === null ? { type } : { type, data };
}
