/** One frame on the wire: the JSON envelope (see the ws-core README, "Wire format"). */
export interface Envelope {
  type: string;
  data?: unknown;
  id?: number;
  from?: string;
  target?: string;
  /** Where a frame to a group with history is in that group's history (set by the server). */
  pos?: StreamPosition & { group: string };
}

/** A position in a group's history: `offset` counts the group's frames within `epoch`. */
export interface StreamPosition {
  epoch: string;
  offset: number;
}

/** A request for a group's kept frames. */
export const HISTORY = "$history";
/** The client's last positions, sent first on every connection. */
export const POSITIONS = "$positions";
/** Where this client stands in a group's history, sent when it joins a group with history. */
export const POSITION = "$position";

/** Answer to a request. */
export const REPLY = "$reply";
/** Error, answering a request when it has an `id`. */
export const ERROR = "$error";
/** Client heartbeat; the server answers with {@link PONG}. */
export const PING = "$ping";
/** The server's answer to {@link PING}. */
export const PONG = "$pong";
/** Request ids stay below 2^53 so that JavaScript numbers hold them exactly. */
export const MAX_REQUEST_ID = Number.MAX_SAFE_INTEGER;

/** Parses a frame; `undefined` for anything that is not an object with a string `type`. */
export function parseEnvelope(text: string): Envelope | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const frame = value as Record<string, unknown>;
  if (typeof frame["type"] !== "string") return undefined;
  return frame as unknown as Envelope;
}
