/**
 * Presence lists: who is in a group, kept up to date from the server's `$presence_state` and
 * `$presence_diff` frames (see ws-core's `presence` module).
 */

/** The `type` of a group's member list, sent when this client joins a group with presence. */
export const PRESENCE_STATE = "$presence_state";
/** The `type` of a group's joins and leaves since the last tick. */
export const PRESENCE_DIFF = "$presence_diff";

/** The presence meta type of a generated protocol (`unknown` when it declares none). */
export type MetaOf<P> = P extends { presence: infer M } ? M : unknown;

/** One member of a presence list: its client id and the meta the server gave it. The one shape of a
 * member everywhere: a view's `members`, a change's `joins` and `leaves`, React's `usePresence`. */
export interface Member<M> {
  id: string;
  meta: M;
}

/** One change of a presence list. */
export interface PresenceChange<M> {
  /** Members that arrived. */
  joins: readonly Member<M>[];
  /** Members that left. */
  leaves: readonly Member<M>[];
  /** Members in the group now (on every node). */
  count: number;
}

/** The live member list of one group. */
export interface PresenceView<M> {
  readonly group: string;
  /** Members in the order they arrived; empty when the group is in counts-only mode (see `count`). A
   * new array after each change, the same one until then. */
  readonly members: readonly Member<M>[];
  /** The meta of the member with client id `id`, if it is in the list. */
  get(id: string): M | undefined;
  /** Members in the group, on every node. */
  readonly count: number;
  /** Whether the server sends counts only for this group (it is bigger than the server's threshold). */
  readonly countsOnly: boolean;
  /** Listens to changes; returns a function that stops listening. */
  onChange(listener: (change: PresenceChange<M>) => void): () => void;
}

interface PresenceData {
  group?: unknown;
  count?: unknown;
  members?: unknown;
  joins?: unknown;
  leaves?: unknown;
}

function entries<M>(value: unknown): Map<string, M> {
  const map = new Map<string, M>();
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    for (const [id, meta] of Object.entries(value)) map.set(id, meta as M);
  }
  return map;
}

const listed = <M>(map: ReadonlyMap<string, M>): Member<M>[] => [...map].map(([id, meta]) => ({ id, meta }));

/** A group's list as the frames describe it. */
export class Presence<M> implements PresenceView<M> {
  private byId = new Map<string, M>();
  members: readonly Member<M>[] = [];
  count = 0;
  countsOnly = false;
  private readonly listeners = new Set<(change: PresenceChange<M>) => void>();

  constructor(readonly group: string) {}

  get(id: string): M | undefined {
    return this.byId.get(id);
  }

  onChange(listener: (change: PresenceChange<M>) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Applies a state (the whole list) or a diff (joins and leaves, applied as set operations). */
  apply(type: string, data: PresenceData): void {
    const count = typeof data.count === "number" ? data.count : this.count;
    const joins = new Map<string, M>();
    const leaves = new Map<string, M>();
    if (type === PRESENCE_STATE) {
      const members = entries<M>(data.members);
      this.countsOnly = data.members === undefined;
      for (const [id, meta] of this.byId) if (!members.has(id)) leaves.set(id, meta);
      for (const [id, meta] of members) if (!this.byId.has(id)) joins.set(id, meta);
      this.byId = members;
    } else {
      this.countsOnly = data.joins === undefined && data.leaves === undefined;
      for (const [id, meta] of entries<M>(data.leaves)) {
        if (this.byId.delete(id)) leaves.set(id, meta);
      }
      for (const [id, meta] of entries<M>(data.joins)) {
        if (!this.byId.has(id)) joins.set(id, meta);
        this.byId.set(id, meta);
      }
    }
    this.count = count;
    this.members = listed(this.byId);
    const change = { joins: listed(joins), leaves: listed(leaves), count };
    for (const listener of this.listeners) listener(change);
  }

  /** The connection is gone: the server forgot this client's groups, so the list is empty until a new
   * join brings a new state. */
  reset(): void {
    if (this.byId.size === 0 && this.count === 0) return;
    const leaves = this.members;
    this.byId = new Map();
    this.members = [];
    this.count = 0;
    for (const listener of this.listeners) listener({ joins: [], leaves, count: 0 });
  }
}
