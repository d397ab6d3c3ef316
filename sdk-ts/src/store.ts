/**
 * The client's state as stores: `subscribe(listener)` and `getSnapshot()`, the contract React's
 * `useSyncExternalStore`, Svelte's stores, Vue's `shallowRef` watchers and Solid's `from` all read. A
 * snapshot is the same object until something changes, so a framework re-renders only then.
 */

import type { CloseInfo, ConnectionState, Recovery, WsClient } from "./client.js";
import type { WsRequestError } from "./errors.js";
import type { DataOf, MessageMeta, ProtocolShape, TypeOf } from "./protocol.js";
import type { Member, MetaOf } from "./presence.js";

/** Something a UI can read now and be told of when it changes. */
export interface Store<T> {
  /** Calls `listener` after each change; returns a function that stops it. */
  subscribe(listener: () => void): () => void;
  /** The value now; the same object until it changes. */
  getSnapshot(): T;
}

/** A store fed by one subscription of the client, made on the first listener and dropped after the last. */
function store<T>(initial: T, start: (set: (value: T) => void) => () => void): Store<T> {
  let value = initial;
  const listeners = new Set<() => void>();
  let stop: (() => void) | undefined;
  const set = (next: T) => {
    if (Object.is(next, value)) return;
    value = next;
    for (const listener of [...listeners]) listener();
  };
  return {
    subscribe(listener) {
      listeners.add(listener);
      stop ??= start(set);
      return () => {
        listeners.delete(listener);
        if (listeners.size === 0) {
          stop?.();
          stop = undefined;
        }
      };
    },
    getSnapshot: () => value,
  };
}

/** The connection's state (`connecting`, `open`, `reconnecting`, `closed`). */
export function connectionStore<P extends ProtocolShape>(client: WsClient<P>): Store<ConnectionState> {
  return store(client.state, (set) => {
    set(client.state);
    return client.onState((state) => set(state));
  });
}

/** The connection's state, and the close that led to it. */
export interface ConnectionInfo {
  state: ConnectionState;
  /** While `reconnecting` or `closed`: the close frame's code and reason (a handshake the server refused,
   * or a lost connection, reads 1006); `undefined` while `connecting` or `open`. */
  close: CloseInfo | undefined;
}

/** The connection's state with the close that led to it: what a page shows when it is not connected (a
 * client for another protocol version is closed with 3409, "load the current client"). */
export function connectionInfoStore<P extends ProtocolShape>(client: WsClient<P>): Store<ConnectionInfo> {
  let last: ConnectionInfo = { state: client.state, close: undefined };
  return store(last, (set) => {
    const update = (state: ConnectionState, close?: CloseInfo) => {
      const kept = state === "reconnecting" || state === "closed" ? close : undefined;
      if (state === last.state && kept?.code === last.close?.code && kept?.reason === last.close?.reason) return;
      last = { state, close: kept };
      set(last);
    };
    update(client.state, last.close);
    return client.onState(update);
  });
}

/** The last `$error` the server sent that answered no request: `protocol_mismatch` (a client built for
 * another version), or a refused `send` (`invalid_data`, `forbidden`, ...); `undefined` until one. */
export function errorStore<P extends ProtocolShape>(client: WsClient<P>): Store<WsRequestError | undefined> {
  return store<WsRequestError | undefined>(undefined, (set) => client.onError((error) => set(error)));
}

/** The last message of one type, with its meta; `undefined` until one arrives. */
export function messageStore<P extends ProtocolShape, K extends TypeOf<P["server"]>>(
  client: WsClient<P>,
  type: K,
): Store<{ data: DataOf<P["server"], K>; meta: MessageMeta } | undefined> {
  return store<{ data: DataOf<P["server"], K>; meta: MessageMeta } | undefined>(undefined, (set) =>
    client.on(type, (data, meta) => set({ data, meta })),
  );
}

/** A group's presence: its members (in the order they arrived) and its count. */
export interface PresenceSnapshot<M> {
  members: readonly Member<M>[];
  count: number;
  countsOnly: boolean;
}

/** A group's presence list. */
export function presenceStore<P extends ProtocolShape>(
  client: WsClient<P>,
  group: string,
): Store<PresenceSnapshot<MetaOf<P>>> {
  const view = client.presence(group);
  const read = (): PresenceSnapshot<MetaOf<P>> => ({
    members: view.members,
    count: view.count,
    countsOnly: view.countsOnly,
  });
  return store(read(), (set) => {
    set(read());
    return view.onChange(() => set(read()));
  });
}

/** The outcome of the last join of a group with history (`undefined` before one). */
export function recoveryStore<P extends ProtocolShape>(client: WsClient<P>, group: string): Store<Recovery | undefined> {
  return store<Recovery | undefined>(undefined, (set) => client.group(group).onRecovery((recovery) => set(recovery)));
}
