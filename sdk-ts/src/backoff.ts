/** Reconnection policy: exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And Jitter"). */
export interface ReconnectOptions {
  /** First delay bound in milliseconds (default 250). */
  baseDelayMs?: number;
  /** Largest delay bound in milliseconds (default 10 000). */
  maxDelayMs?: number;
  /** Attempts before giving up and staying closed (default: unlimited). */
  maxAttempts?: number;
  /** How long a connection must stay open before the backoff starts again from `baseDelayMs`, in ms
   * (default 5 000): a server that accepts and then closes at once is retried ever more slowly. */
  stableAfterMs?: number;
  /** What to do after the server closed with `code`: `"retry"`, `"slow"` (wait `maxDelayMs`, the bound
   * at its largest) or `"stop"` (stay closed). Default: {@link closeCodePolicy}. */
  onClose?: (code: number) => CloseDecision;
}

/** What the client does after a close. */
export type CloseDecision = "retry" | "slow" | "stop";

/**
 * The default answer to a close code, from the server's documented close codes: the client's own fault is
 * not retried (1002 protocol error, 1003 binary frame, 1007 invalid envelope, 1009 message too big, 3409 a
 * client built for another protocol version, which only a reload cures, a handshake refused as the client
 * is — 3400 bad request, 3401 unauthorized, 3403 forbidden, any 34xx but 3408 and 3429 — and 4000–4999,
 * which the application chose); 1008 (rate limit, too slow a reader) and 3429 (too many connections from
 * this address) are retried after the longest delay; anything else (1001 restart, 1006 lost connection,
 * 1011, 3503 a full or stopping server, ...) is retried with backoff.
 */
export function closeCodePolicy(code: number): CloseDecision {
  if (code === 1008 || code === 3429) return "slow";
  if (code === 1002 || code === 1003 || code === 1007 || code === 1009) return "stop";
  if (code >= 3400 && code <= 3499 && code !== 3408) return "stop";
  if (code >= 4000 && code <= 4999) return "stop";
  return "retry";
}

/** The delay before reconnection attempt `attempt` (0-based): uniform in `[0, min(max, base * 2^attempt))`. */
export function backoffDelay(
  attempt: number,
  options: Pick<Required<ReconnectOptions>, "baseDelayMs" | "maxDelayMs">,
  random: () => number,
): number {
  const bound = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * bound);
}
