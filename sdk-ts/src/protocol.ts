/**
 * Type-level helpers over a generated protocol map (`protocol.ts` from ws-codegen):
 * `{ client: { [type]: { data; reply } }, server: { ... } }`.
 */

/** The shape every generated `Protocol` has. */
export interface ProtocolShape {
  client: object;
  server: object;
}

/** Wire names of one direction. */
export type TypeOf<M> = keyof M & string;

/** The payload type of message `K`. */
export type DataOf<M, K extends keyof M> = M[K] extends { data: infer D } ? D : never;

/** The reply type of message `K` (`never` when it is not a request). */
export type ReplyOf<M, K extends keyof M> = M[K] extends { reply: infer R } ? R : never;

/** The item type of stream `K` (`never` when it is not a stream). */
export type ItemOf<M, K extends keyof M> = M[K] extends { item: infer I } ? I : never;

/** Wire names of the messages answered with a stream of items (`#[ws(stream = T)]`). */
export type StreamTypeOf<M> = {
  [K in keyof M]: [ItemOf<M, K>] extends [never] ? never : K;
}[keyof M] &
  string;

/** Arguments of `stream` after the type: the payload (optional when `null`), then the options. */
export type StreamArgs<D> = [D] extends [null]
  ? [data?: null, options?: StreamOptions]
  : [data: D, options?: StreamOptions];

/** Options of one stream. */
export interface StreamOptions {
  /** Cancels the stream: the loop ends with the signal's reason, and the server stops its producer. */
  signal?: AbortSignal;
}

/** Wire names of the messages that are requests (have a reply type). */
export type RequestTypeOf<M> = {
  [K in keyof M]: [ReplyOf<M, K>] extends [never] ? never : K;
}[keyof M] &
  string;

/** Arguments after the type: the payload, optional when it is `null` (unit messages). */
export type DataArgs<D> = [D] extends [null] ? [data?: null] : [data: D];

/** Options of one request. */
export interface RequestOptions {
  /** Milliseconds to wait for the answer (default: the client's `requestTimeoutMs`). */
  timeoutMs?: number;
}

/** Arguments of `request` after the type. */
export type RequestArgs<D> = [D] extends [null]
  ? [data?: null, options?: RequestOptions]
  : [data: D, options?: RequestOptions];

/** What arrives with a server message besides its payload. */
export interface MessageMeta {
  /** The client the server relayed this for, if any. */
  from?: string;
}
