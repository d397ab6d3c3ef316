/**
 * Streams: a request answered by items (a variant declared `#[ws(stream = T)]` on the server), read with
 * `for await`, resumed by the client itself after a lost connection, cancelled by `break`, `return` or an
 * `AbortSignal`.
 *
 * Frames (ws-core's `stream` module): the request `{type, id, data}` is answered with `$stream {stream}`
 * (the key a resume names), one `$chunk {id, seq, data}` per item, then `$end {count}` or `$error`. After a
 * lost connection the client sends `$resume {stream, after}` with the same id before anything else, and
 * the server sends what came after `after`, then the rest live; an item seen twice is dropped by `seq`.
 */

import type { Connection } from "./connection.js";
import type { Envelope } from "./envelope.js";
import { WsQueueFullError, WsRequestError } from "./errors.js";
import type { StreamOptions } from "./protocol.js";
import { frame } from "./requests.js";

/** Opens a stream. */
export const STREAM = "$stream";
/** One item of a stream. */
export const CHUNK = "$chunk";
/** A stream's end. */
export const END = "$end";
/** The client's cancel of a stream. */
export const CANCEL = "$cancel";
/** The client's resume of a stream after a lost connection. */
export const RESUME = "$resume";


interface State {
  /** The request's type, which its items are checked by. */
  type: string;
  key: string | undefined;
  last: number;
  items: unknown[];
  /** Set once the stream is over: `null` for its end, or why it failed. */
  end: Error | null | undefined;
  wake: (() => void) | undefined;
}

/** Items one stream holds for its loop, at most; past it the stream fails with `WsQueueFullError`. */
const MAX_BUFFERED = 1024;

export class Streams {
  private readonly byId = new Map<number, State>();

  constructor(
    private readonly connection: Connection,
    private readonly allocate: () => number,
    /** The error an item of a stream of `type` fails with, when it does not fit its type. */
    private readonly checkItem: (type: string, chunk: Envelope) => Error | undefined,
    private readonly maxStreams = 64,
  ) {}

  /** Sends stream request `type` and returns its items as they come. */
  open<T>(type: string, data: unknown, options: StreamOptions = {}): AsyncIterableIterator<T> {
    const signal = options.signal;
    const id = this.allocate();
    const state: State = { type, key: undefined, last: 0, items: [], end: undefined, wake: undefined };
    const fail = (error: Error): void => this.finish(id, error);
    if (this.connection.closed) {
      state.end = this.connection.closedError();
    } else if (this.byId.size >= this.maxStreams) {
      state.end = new WsQueueFullError(`${this.maxStreams} streams are already open`);
    } else if (signal?.aborted) {
      state.end = abortError(signal);
    } else {
      this.byId.set(id, state);
      try {
        this.connection.write(JSON.stringify({ ...frame(type, data), id }));
      } catch (error) {
        fail(error as Error);
      }
    }
    const onAbort = (): void => {
      if (signal) this.cancel(id, abortError(signal));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    const streams = this;
    const iterator: AsyncIterableIterator<T> = {
      [Symbol.asyncIterator]() {
        return iterator;
      },
      async next(): Promise<IteratorResult<T>> {
        for (;;) {
          if (state.items.length > 0) return { value: state.items.shift() as T, done: false };
          if (state.end !== undefined) {
            signal?.removeEventListener("abort", onAbort);
            const end = state.end;
            state.end = null;
            if (end !== null) throw end;
            return { value: undefined, done: true };
          }
          await new Promise<void>((resolve) => (state.wake = resolve));
        }
      },
      async return(): Promise<IteratorResult<T>> {
        signal?.removeEventListener("abort", onAbort);
        streams.cancel(id, null);
        state.items = [];
        state.end = null;
        return { value: undefined, done: true };
      },
    };
    return iterator;
  }

  /** Routes a frame of one of this client's streams; `false` for any other frame. */
  receive(msg: Envelope & { seq?: unknown }): boolean {
    const state = msg.id === undefined ? undefined : this.byId.get(msg.id);
    if (!state || msg.id === undefined) return false;
    const id = msg.id;
    switch (msg.type) {
      case STREAM: {
        const key = (msg.data as { stream?: unknown } | undefined)?.stream;
        if (typeof key === "string") state.key = key;
        return true;
      }
      case CHUNK: {
        const seq = typeof msg.seq === "number" ? msg.seq : 0;
        if (seq <= state.last) return true;
        state.last = seq;
        const invalid = this.checkItem(state.type, msg);
        if (invalid) {
          this.cancel(id, invalid);
          return true;
        }
        if (state.items.length >= MAX_BUFFERED) {
          this.cancel(id, new WsQueueFullError(`more than ${MAX_BUFFERED} items waited for the loop`));
          return true;
        }
        state.items.push(msg.data ?? null);
        wake(state);
        return true;
      }
      case END:
        this.finish(id, null);
        return true;
      case "$error": {
        const body = (msg.data ?? {}) as { code?: unknown; message?: unknown };
        this.finish(id, new WsRequestError(String(body.code ?? "unknown"), String(body.message ?? "")));
        return true;
      }
      default:
        return false;
    }
  }

  /** The `$resume` of every stream waiting for a new connection: sent first on it. */
  resumes(): string[] {
    const frames: string[] = [];
    for (const [id, state] of this.byId) {
      if (state.key !== undefined) {
        frames.push(JSON.stringify({ type: RESUME, id, data: { stream: state.key, after: state.last } }));
      }
    }
    return frames;
  }

  /** The connection is gone: a stream whose key is known waits for the next one; the others fail. */
  lost(error: Error): void {
    for (const [id, state] of [...this.byId]) if (state.key === undefined) this.finish(id, error);
  }

  /** The client is closed for good: every stream fails with `error`. */
  closeAll(error: Error): void {
    for (const id of [...this.byId.keys()]) this.finish(id, error);
  }

  private finish(id: number, end: Error | null): void {
    const state = this.byId.get(id);
    if (!state) return;
    this.byId.delete(id);
    if (state.end === undefined) state.end = end;
    wake(state);
  }

  /** Stops stream `id`: the server drops its producer; the loop ends with `end` (`null`: quietly). */
  private cancel(id: number, end: Error | null): void {
    if (!this.byId.has(id)) return;
    this.finish(id, end);
    if (this.connection.state === "open") {
      try {
        this.connection.write(JSON.stringify({ type: CANCEL, data: { id } }));
      } catch {
        // Closed meanwhile: the server forgets the stream with the connection.
      }
    }
  }
}

function wake(state: State): void {
  const wake = state.wake;
  state.wake = undefined;
  wake?.();
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new DOMException("the stream was cancelled", "AbortError");
}
