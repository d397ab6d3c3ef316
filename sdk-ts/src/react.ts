/**
 * React bindings (`ws-core-client/react`): a provider that owns one client, and hooks typed by the
 * generated protocol for its connection state, messages, requests, presence lists and recoveries. They
 * read the client through the framework-neutral stores of `store.ts`, with `useSyncExternalStore`.
 *
 * ```tsx
 * import { createClient } from "./sdk/client.js";
 * import type { Protocol } from "./sdk/protocol.js";
 * import { createWsReact } from "ws-core-client/react";
 *
 * const { WsProvider, useConnectionState, useMessage, useRequest, usePresence } = createWsReact<Protocol>();
 * root.render(<WsProvider connect={() => createClient(url)}><App /></WsProvider>);
 * ```
 */

import {
  createContext,
  createElement,
  useCallback,
  useContext,
  useEffect,
  useMemo,
  useRef,
  useState,
  useSyncExternalStore,
  type ReactElement,
  type ReactNode,
} from "react";
import type { ConnectionState, Recovery, WsClient } from "./client.js";
import type { MetaOf } from "./presence.js";
import type {
  DataArgs,
  DataOf,
  ItemOf,
  MessageMeta,
  ProtocolShape,
  ReplyOf,
  RequestArgs,
  RequestTypeOf,
  StreamOptions,
  StreamTypeOf,
  TypeOf,
} from "./protocol.js";
import type { WsRequestError } from "./errors.js";
import {
  connectionInfoStore,
  connectionStore,
  errorStore,
  messageStore,
  presenceStore,
  recoveryStore,
  type ConnectionInfo,
  type PresenceSnapshot,
  type Store,
} from "./store.js";

/** Where a request made with {@link WsReact.useRequest} is. */
export interface RequestState<R> {
  /** Whether the last request is waiting for its answer. */
  loading: boolean;
  /** The last answer, kept until the next one. */
  data: R | undefined;
  /** Why the last request failed (`WsRequestError`, `WsTimeoutError`, ...), if it did. */
  error: Error | undefined;
}

/** Where a stream started with {@link WsReact.useStream} is. */
export interface StreamState<T> {
  /** The items so far, in order (a new array after each). */
  items: readonly T[];
  /** `idle` before `start`; `streaming`; `done` after its end; `cancelled` after `cancel` (or another
   * `start`); `failed` with `error`. A lost connection stays `streaming`: the client resumes it. */
  state: "idle" | "streaming" | "done" | "cancelled" | "failed";
  /** Why it failed (`WsRequestError` with the handler's code, `WsClosedError`, ...). */
  error: Error | undefined;
}

/** The provider and hooks of one protocol `P`. */
export interface WsReact<P extends ProtocolShape> {
  /** Owns one client for its children: made by `connect` once mounted, closed once unmounted. Under
   * StrictMode's unmount and mount again the same client stays, so no second socket is opened. Renders
   * `fallback` (default nothing) until the client exists. */
  WsProvider(props: { connect: () => WsClient<P>; fallback?: ReactNode; children?: ReactNode }): ReactElement | null;
  /** The provider's client. */
  useClient(): WsClient<P>;
  /** The connection's state, re-rendering on each change. */
  useConnectionState(): ConnectionState;
  /** The connection's state with the close that led to it (code and reason while `reconnecting` or
   * `closed`): what to show when the page is not connected, such as "a new version is available — reload"
   * after 3409. */
  useConnection(): ConnectionInfo;
  /** The last `$error` the server sent that answered no request (`protocol_mismatch`, or a `send` it
   * refused: `invalid_data`, `forbidden`, ...), with its `code` and message; `undefined` until one. */
  useLastError(): WsRequestError | undefined;
  /** Calls `listener` with every message of `type` while the component is mounted (the latest
   * `listener` given; no re-subscription when it changes). */
  useMessage<K extends TypeOf<P["server"]>>(type: K, listener: (data: DataOf<P["server"], K>, meta: MessageMeta) => void): void;
  /** The last message of `type` and its meta, re-rendering when another arrives. */
  useLastMessage<K extends TypeOf<P["server"]>>(type: K): { data: DataOf<P["server"], K>; meta: MessageMeta } | undefined;
  /** A request of `type`: `run(data)` sends it (and resolves with the reply), and the state follows it. */
  useRequest<K extends RequestTypeOf<P["client"]>>(
    type: K,
  ): RequestState<ReplyOf<P["client"], K>> & {
    run(...args: RequestArgs<DataOf<P["client"], K>>): Promise<ReplyOf<P["client"], K>>;
  };
  /** A stream of `type`: `start(data)` sends the request (cancelling one still running), and `items` grow
   * as they come; `cancel()` stops it on the server. Cancelled when the component unmounts. */
  useStream<K extends StreamTypeOf<P["client"]>>(
    type: K,
  ): StreamState<ItemOf<P["client"], K>> & {
    start(...data: DataArgs<DataOf<P["client"], K>>): void;
    cancel(): void;
  };
  /** A group's presence list (members in arrival order, count). */
  usePresence(group: string): PresenceSnapshot<MetaOf<P>>;
  /** The outcome of the last join of a group with history. */
  useRecovery(group: string): Recovery | undefined;
}

function useStore<T>(store: Store<T>): T {
  return useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot);
}

/** The provider and hooks of protocol `P` (the generated `Protocol`): a wrong message type or payload in a
 * hook call does not compile. */
export function createWsReact<P extends ProtocolShape>(): WsReact<P> {
  const Context = createContext<WsClient<P> | undefined>(undefined);

  function WsProvider(props: { connect: () => WsClient<P>; fallback?: ReactNode; children?: ReactNode }) {
    const [client, setClient] = useState<WsClient<P>>();
    const held = useRef<{ client: WsClient<P> | undefined; closing: ReturnType<typeof setTimeout> | undefined }>({
      client: undefined,
      closing: undefined,
    });
    const connect = useRef(props.connect);
    useEffect(() => {
      const h = held.current;
      clearTimeout(h.closing);
      h.closing = undefined;
      h.client ??= connect.current();
      setClient(h.client);
      return () => {
        // StrictMode runs this cleanup and the effect again at once: the client waits for that.
        h.closing = setTimeout(() => {
          h.client?.close();
          h.client = undefined;
        }, 0);
      };
    }, []);
    if (!client) return createElement(Context.Provider, { value: undefined }, props.fallback ?? null);
    return createElement(Context.Provider, { value: client }, props.children);
  }

  function useClient(): WsClient<P> {
    const client = useContext(Context);
    if (!client) throw new Error("ws-core-client/react: a hook used outside its WsProvider");
    return client;
  }

  return {
    WsProvider,
    useClient,
    useConnectionState() {
      const client = useClient();
      return useStore(useMemo(() => connectionStore(client), [client]));
    },
    useConnection() {
      const client = useClient();
      return useStore(useMemo(() => connectionInfoStore(client), [client]));
    },
    useLastError() {
      const client = useClient();
      return useStore(useMemo(() => errorStore(client), [client]));
    },
    useMessage(type, listener) {
      const client = useClient();
      const latest = useRef(listener);
      latest.current = listener;
      useEffect(() => client.on(type, (data, meta) => latest.current(data, meta)), [client, type]);
    },
    useLastMessage(type) {
      const client = useClient();
      return useStore(useMemo(() => messageStore(client, type), [client, type]));
    },
    useRequest<K extends RequestTypeOf<P["client"]>>(type: K) {
      const client = useClient();
      const [state, setState] = useState<RequestState<ReplyOf<P["client"], K>>>({
        loading: false,
        data: undefined,
        error: undefined,
      });
      const run = useCallback(
        async (...args: RequestArgs<DataOf<P["client"], K>>) => {
          setState((s) => ({ ...s, loading: true, error: undefined }));
          try {
            const data = await client.request(type, ...args);
            setState({ loading: false, data, error: undefined });
            return data;
          } catch (error) {
            setState((s) => ({ ...s, loading: false, error: error as Error }));
            throw error;
          }
        },
        [client, type],
      );
      return { ...state, run };
    },
    useStream<K extends StreamTypeOf<P["client"]>>(type: K) {
      type Item = ItemOf<P["client"], K>;
      const client = useClient();
      const [state, setState] = useState<StreamState<Item>>({ items: [], state: "idle", error: undefined });
      const running = useRef<AbortController | undefined>(undefined);
      const cancel = useCallback(() => {
        running.current?.abort();
        running.current = undefined;
      }, []);
      useEffect(() => cancel, [cancel]);
      const start = useCallback(
        (...data: DataArgs<DataOf<P["client"], K>>) => {
          running.current?.abort();
          const controller = new AbortController();
          running.current = controller;
          setState({ items: [], state: "streaming", error: undefined });
          void (async () => {
            try {
              // The payload's type was checked by `start`'s signature; the options come after it.
              const open = client.stream.bind(client) as unknown as (
                type: K,
                data: unknown,
                options: StreamOptions,
              ) => AsyncIterable<Item>;
              for await (const item of open(type, data[0] ?? null, { signal: controller.signal })) {
                if (controller.signal.aborted) return;
                setState((s) => ({ ...s, items: [...s.items, item] }));
              }
              setState((s) => ({ ...s, state: "done" }));
            } catch (error) {
              if (controller.signal.aborted) setState((s) => ({ ...s, state: "cancelled" }));
              else setState((s) => ({ ...s, state: "failed", error: error as Error }));
            } finally {
              if (running.current === controller) running.current = undefined;
            }
          })();
        },
        [client, type],
      );
      return { ...state, start, cancel };
    },
    usePresence(group) {
      const client = useClient();
      return useStore(useMemo(() => presenceStore(client, group), [client, group]));
    },
    useRecovery(group) {
      const client = useClient();
      return useStore(useMemo(() => recoveryStore(client, group), [client, group]));
    },
  };
}
