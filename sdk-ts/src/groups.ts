/**
 * What the client knows per group: its last position in the group's history (sent back as `$positions`
 * on every connection, so joining again recovers what was missed), its presence list, and the outcome of
 * each join (`$position`). {@link GroupHandle} is one group's view of it, as `client.group(name)` gives.
 */

import type { Envelope, StreamPosition } from "./envelope.js";
import { HISTORY, POSITIONS } from "./envelope.js";
import { Presence, type PresenceView } from "./presence.js";

/** What joining a group with history gave: `recovered` is `true` when every frame missed while away
 * follows (in order, none twice), `false` when some are gone (`reason`: `expired`, `epoch` or
 * `unavailable`: fetch the state another way), and absent on a first join. */
export interface Recovery {
  group: string;
  recovered?: boolean;
  reason?: string;
}

/** A group's kept frames, as `history` returns them. */
export interface HistoryPage {
  group: string;
  epoch: string;
  /** The offset of the group's last frame. */
  offset: number;
  /** Whether every frame after the requested offset is in `frames` (none was pushed out). */
  complete: boolean;
  /** The frames, oldest first, each with its `pos`. */
  frames: Envelope[];
}

/** The requests the SDK makes of the server itself, by type: what each sends and what its reply is. */
export interface SystemRequests {
  [HISTORY]: { data: { group: string; since: number }; reply: HistoryPage };
}

/** One group as this client sees it (`client.group(name)`), in the shape of centrifuge-js's
 * `Subscription`: where it is in the group's history, who is there, and what a join recovered. */
export interface GroupHandle<M> {
  readonly name: string;
  /** The last position seen in the group's history. */
  position(): StreamPosition | undefined;
  /** The live member list (empty until this client joins the group and the server's `$presence_state`
   * arrives; emptied when the connection is lost, filled again when the group is joined again). */
  presence(): PresenceView<M>;
  /** Reads the group's kept frames after offset `since` (default: every kept frame); members only
   * (`forbidden` otherwise, `not_found` for a group without history). */
  history(since?: number): Promise<HistoryPage>;
  /** Listens to the outcome of each join of this group; returns a function that stops listening. */
  onRecovery(listener: (recovery: Recovery) => void): () => void;
}

/** Positions kept, one per group (the oldest goes first past it). */
const MAX_POSITIONS = 256;

export class Groups<M> {
  /** The last position seen per group with history; frames at or before it are duplicates. */
  private readonly positions = new Map<string, StreamPosition>();
  /** Member lists by group: one per group asked for or told about (the server bounds a client's groups). */
  private readonly presences = new Map<string, Presence<M>>();
  private readonly recoveryListeners = new Set<(recovery: Recovery) => void>();

  /** The `$positions` frame to send first on a connection; `undefined` when no position is known. */
  positionsFrame(): string | undefined {
    if (this.positions.size === 0) return undefined;
    return JSON.stringify({ type: POSITIONS, data: Object.fromEntries(this.positions) });
  }

  /** Records a frame's position; `false` for a frame already seen (replayed and also delivered live). */
  advance(pos: StreamPosition & { group: string }): boolean {
    const known = this.positions.get(pos.group);
    if (known && known.epoch === pos.epoch && pos.offset <= known.offset) return false;
    this.remember(pos.group, { epoch: pos.epoch, offset: pos.offset });
    return true;
  }

  /** A `$position`: after a complete recovery the replayed frames follow and move the position; otherwise
   * the client starts from the history's current end. */
  positioned(data: Recovery & Partial<StreamPosition>): void {
    if (typeof data.group !== "string") return;
    if (data.recovered !== true && typeof data.epoch === "string" && typeof data.offset === "number") {
      this.remember(data.group, { epoch: data.epoch, offset: data.offset });
    } else if (data.recovered !== true) {
      this.positions.delete(data.group);
    }
    const recovery: Recovery = { group: data.group };
    if (data.recovered !== undefined) recovery.recovered = data.recovered;
    if (data.reason !== undefined) recovery.reason = data.reason;
    for (const listener of this.recoveryListeners) listener(recovery);
  }

  position(group: string): StreamPosition | undefined {
    const known = this.positions.get(group);
    return known && { ...known };
  }

  presence(group: string): Presence<M> {
    let view = this.presences.get(group);
    if (!view) {
      view = new Presence<M>(group);
      this.presences.set(group, view);
    }
    return view;
  }

  onRecovery(listener: (recovery: Recovery) => void): () => void {
    this.recoveryListeners.add(listener);
    return () => this.recoveryListeners.delete(listener);
  }

  /** The connection is gone: the server forgot this client's memberships. */
  reset(): void {
    for (const view of this.presences.values()) view.reset();
  }

  private remember(group: string, position: StreamPosition): void {
    this.positions.delete(group);
    this.positions.set(group, position);
    if (this.positions.size > MAX_POSITIONS) {
      const oldest = this.positions.keys().next().value;
      if (oldest !== undefined) this.positions.delete(oldest);
    }
  }
}

/** One group's view of {@link Groups}, with the client's `$history` request. */
export class Group<M> implements GroupHandle<M> {
  constructor(
    readonly name: string,
    private readonly groups: Groups<M>,
    private readonly fetch: (data: SystemRequests[typeof HISTORY]["data"]) => Promise<HistoryPage>,
  ) {}

  position(): StreamPosition | undefined {
    return this.groups.position(this.name);
  }

  presence(): PresenceView<M> {
    return this.groups.presence(this.name);
  }

  history(since = 0): Promise<HistoryPage> {
    return this.fetch({ group: this.name, since });
  }

  onRecovery(listener: (recovery: Recovery) => void): () => void {
    return this.groups.onRecovery((recovery) => {
      if (recovery.group === this.name) listener(recovery);
    });
  }
}
