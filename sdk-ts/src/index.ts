export { createClient } from "./client.js";
export type {
  ClientOptions,
  CloseInfo,
  ConnectionState,
  GroupHandle,
  HistoryPage,
  InvalidFrame,
  Recovery,
  WebSocketConstructor,
  WebSocketLike,
  WsClient,
} from "./client.js";
export type { CloseDecision, ReconnectOptions } from "./backoff.js";
export { backoffDelay, closeCodePolicy } from "./backoff.js";
export { WsClosedError, WsError, WsInvalidError, WsQueueFullError, WsRequestError, WsTimeoutError } from "./errors.js";
export type { Envelope, StreamPosition } from "./envelope.js";
export type { Member, MetaOf, PresenceChange, PresenceView } from "./presence.js";
export { PRESENCE_DIFF, PRESENCE_STATE } from "./presence.js";
export type { Left, SessionExpiry } from "./session.js";
export { LEFT, REFRESH, SESSION } from "./session.js";
export { ERROR, HISTORY, PING, PONG, POSITION, POSITIONS, REPLY } from "./envelope.js";
export type {
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
export { CANCEL, CHUNK, END, RESUME, STREAM } from "./streams.js";
export type { Check, Mismatch, Path, Validators } from "./validate.js";
export { all, any, array, bool, literal, never, nul, num, object, pathText, ref, some, str } from "./validate.js";
export type { ConnectionInfo, PresenceSnapshot, Store } from "./store.js";
export { connectionInfoStore, connectionStore, errorStore, messageStore, presenceStore, recoveryStore } from "./store.js";
