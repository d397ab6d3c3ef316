/**
 * Sessions: the credential a connection opens with, kept fresh (ws-core's `session` module). With
 * `getToken`, the client asks for a token before each connection and sends it in the URL; when the server
 * announces the expiry (`$session`), it refreshes in-band (`$refresh`) `refreshMarginMs` before it. One
 * token is fetched at a time, whoever asks (a refresh, a reconnection); a failed fetch is retried with
 * backoff; a refresh the server refuses as `unauthorized` or `forbidden` ends the client for good.
 */

import { WsRequestError } from "./errors.js";

/** The `type` of the server's announcement of the session's expiry. */
export const SESSION = "$session";
/** The `type` of the request that gives the connection a new token. */
export const REFRESH = "$refresh";

/** The `type` of the server's word that this client was taken out of a group. */
export const LEFT = "$left";

/** A group this client was taken out of, and why: `"expired"` (its membership ended) or `"unauthorized"`
 * (a refreshed token no longer grants it). */
export interface Left {
  group: string;
  reason: string;
}

/** The data of `$session`, and the reply to `$refresh`: time left, `null` for a session that does not expire. */
export interface SessionExpiry {
  expires_in_ms: number | null;
}

/** What the keeper needs of the client. */
export interface SessionHost {
  /** Sends `$refresh` on the current connection. */
  refresh(token: string): Promise<SessionExpiry>;
  /** Counts connections: a refresh started on one is not carried over to the next. */
  generation(): number;
  /** The server refused the new token: the client ends, naming why. */
  end(reason: string): void;
}

/** Longest wait between two tries of a failed refresh, in ms. */
const MAX_RETRY_MS = 30_000;

/** One client's tokens: the last one fetched, the next fetch, and the refresh timer. */
export class SessionKeeper {
  token: string | undefined;
  private fetching: Promise<string> | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private refreshing = false;
  private failures = 0;

  constructor(
    private readonly getToken: () => Promise<string>,
    private readonly marginMs: number,
    private readonly host: SessionHost,
  ) {}

  /** A new token: the one being fetched, or a new fetch. Never two `getToken` calls at once. */
  next(): Promise<string> {
    this.fetching ??= Promise.resolve()
      .then(() => this.getToken())
      .then((token) => (this.token = token))
      .finally(() => (this.fetching = undefined));
    return this.fetching;
  }

  /** The server said when the session expires: the refresh is planned `marginMs` before, and never
   * sooner than halfway, so a short-lived token is not refreshed in a loop. */
  announced(expiry: SessionExpiry): void {
    clearTimeout(this.timer);
    const left = expiry.expires_in_ms;
    if (typeof left !== "number") return;
    this.planRefresh(Math.max(left - this.marginMs, left / 2));
  }

  /** The connection is gone: its plan with it (the next connection's `$session` plans again). */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private planRefresh(delayMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.refresh(), delayMs);
  }

  private async refresh(): Promise<void> {
    if (this.refreshing) return;
    this.refreshing = true;
    const generation = this.host.generation();
    try {
      const token = await this.next();
      if (generation !== this.host.generation()) return;
      const expiry = await this.host.refresh(token);
      this.failures = 0;
      if (generation === this.host.generation()) this.announced(expiry);
    } catch (error) {
      if (generation !== this.host.generation()) return;
      if (error instanceof WsRequestError && (error.code === "unauthorized" || error.code === "forbidden")) {
        this.stop();
        this.host.end(`refresh refused: ${error.message}`);
        return;
      }
      // `getToken` failed, or the request timed out: try again, ever more slowly, while connected.
      this.failures += 1;
      this.planRefresh(Math.min(MAX_RETRY_MS, 500 * 2 ** Math.min(this.failures, 10)));
    } finally {
      this.refreshing = false;
    }
  }
}
