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

/** A frame did not fit the protocol's types: one the server sent (a reply rejects with it), or data the
 * application gave `send` or `request` (thrown before anything leaves). `code` is `invalid_data`. */
export class WsInvalidError extends WsRequestError {
  override name = "WsInvalidError";
  constructor(
    /** Where in the frame: `data.user`, `data.points[2].x`. */
    readonly path: string,
    /** What was expected there. */
    readonly expected: string,
  ) {
    super("invalid_data", `${path}: expected ${expected}`);
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
