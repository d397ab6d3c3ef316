/** Base class of every error this client throws or rejects with. */
export class WsError extends Error {
  override name = "WsError";
}

/** The server answered a request with `$error` (or sent an `$error` frame without `id`). */
export class WsRequestError extends WsError {
  override name = "WsRequestError";
  constructor(
    /** The server's error code, such as `forbidden`, `not_found`, `invalid_data`. */
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** No answer arrived within the request's timeout. */
export class WsTimeoutError extends WsError {
  override name = "WsTimeoutError";
}

/** The connection closed before the request was answered, or the client was closed. */
export class WsClosedError extends WsError {
  override name = "WsClosedError";
}

/** The outbound queue (frames waiting for a connection) or the table of pending requests is full. */
export class WsQueueFullError extends WsError {
  override name = "WsQueueFullError";
}
