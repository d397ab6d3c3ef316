/**
 * Frames checked against the protocol's {@link Validators} on their way in and out: what the client does
 * with a frame that does not fit its type.
 */

import type { Envelope } from "./envelope.js";
import { WsInvalidError } from "./errors.js";
import type { Check, Mismatch, Validators } from "./validate.js";

/** A frame that did not fit its type. */
export interface InvalidFrame {
  /** `received` from the server, or `sent`: data the application gave `send`, `request` or a handler's
   * answer, refused before it left. */
  direction: "received" | "sent";
  /** The message type (for a reply, the type of the request it answers). */
  type: string;
  /** Where the first mismatch is, from the frame: `data.user`, `data.points[2].x`, or `type`. */
  path: string;
  /** What was expected there. */
  expected: string;
  /** The frame (for `sent`, as it would have been sent). */
  frame: Envelope;
}

const unknownType: Mismatch = { path: "type", expected: "a message type of this protocol" };

/** The checks of one client, and where it reports what does not fit. */
export class Checked {
  constructor(
    private readonly validators: Validators | undefined,
    private readonly report: (invalid: InvalidFrame) => void,
  ) {}

  /** Checks a frame of `type` whose `data` is checked by `table[type]`; reports and returns the error
   * when it does not fit. A type the table does not have does not fit either. */
  private check(
    table: keyof Validators,
    direction: InvalidFrame["direction"],
    type: string,
    frame: Envelope,
  ): WsInvalidError | undefined {
    const validators = this.validators;
    if (!validators) return undefined;
    const check: Check | undefined = validators[table]?.[type];
    const mismatch = check ? check(frame.data ?? null, "data") : unknownType;
    if (!mismatch) return undefined;
    this.report({ direction, type, path: mismatch.path, expected: mismatch.expected, frame });
    return new WsInvalidError(mismatch.path, mismatch.expected);
  }

  /** A server message (or server request) of this protocol. */
  received(frame: Envelope): WsInvalidError | undefined {
    return this.check("server", "received", frame.type, frame);
  }

  /** The server's reply to this client's request of `type`. */
  reply(type: string, frame: Envelope): WsInvalidError | undefined {
    return this.validators && type in this.validators.serverReplies
      ? this.check("serverReplies", "received", type, frame)
      : undefined;
  }

  /** One item of the stream that answers this client's request of `type`. */
  item(type: string, frame: Envelope): WsInvalidError | undefined {
    return this.validators?.serverItems && type in this.validators.serverItems
      ? this.check("serverItems", "received", type, frame)
      : undefined;
  }

  /** A message or request the application sends. */
  sent(frame: Envelope): WsInvalidError | undefined {
    return this.check("client", "sent", frame.type, frame);
  }

  /** This client's answer to the server's request of `type`. */
  answer(type: string, frame: Envelope): WsInvalidError | undefined {
    return this.check("clientReplies", "sent", type, frame);
  }
}
