export { createClient } from "./client.js";
export type {
  ClientOptions,
  ConnectionState,
  HistoryPage,
  Recovery,
  WebSocketConstructor,
  WebSocketLike,
  WsClient,
} from "./client.js";
export type { CloseDecision, ReconnectOptions } from "./backoff.js";
export { backoffDelay, closeCodePolicy } from "./backoff.js";
export { WsClosedError, WsError, WsQueueFullError, WsRequestError, WsTimeoutError } from "./errors.js";
export type { Envelope, StreamPosition } from "./envelope.js";
export type { MetaOf, PresenceChange, PresenceView } from "./presence.js";
export { PRESENCE_DIFF, PRESENCE_STATE } from "./presence.js";
export { ERROR, HISTORY, PING, PONG, POSITION, POSITIONS, REPLY } from "./envelope.js";
export type {
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
