/** Reconnection policy: exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And Jitter"). */
export interface ReconnectOptions {
  /** First delay bound in milliseconds (default 250). */
  baseDelayMs?: number;
  /** Largest delay bound in milliseconds (default 10 000). */
  maxDelayMs?: number;
  /** Attempts before giving up and staying closed (default: unlimited). */
  maxAttempts?: number;
}

/** The delay before reconnection attempt `attempt` (0-based): uniform in `[0, min(max, base * 2^attempt))`. */
export function backoffDelay(attempt: number, options: Required<ReconnectOptions>, random: () => number): number {
  const bound = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * bound);
}
