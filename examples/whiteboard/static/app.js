// Built from examples/whiteboard/web/app.ts by sdk-ts/scripts/build-page.mjs. Do not edit.
var __defProp = Object.defineProperty;
var __defNormalProp = (obj, key, value) => key in obj ? __defProp(obj, key, { enumerable: true, configurable: true, writable: true, value }) : obj[key] = value;
var __publicField = (obj, key, value) => __defNormalProp(obj, typeof key !== "symbol" ? key + "" : key, value);

// sdk-ts/src/backoff.ts
function closeCodePolicy(code) {
  if (code === 1008 || code === 3429) return "slow";
  if (code === 1002 || code === 1003 || code === 1007 || code === 1009) return "stop";
  if (code >= 3400 && code <= 3499 && code !== 3408) return "stop";
  if (code >= 4e3 && code <= 4999) return "stop";
  return "retry";
}
function backoffDelay(attempt, options, random) {
  const bound = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * bound);
}

// sdk-ts/src/envelope.ts
var HISTORY = "$history";
var POSITIONS = "$positions";
var POSITION = "$position";
var REPLY = "$reply";
var ERROR = "$error";
var PING = "$ping";
var PONG = "$pong";
var MAX_REQUEST_ID = Number.MAX_SAFE_INTEGER;
function parseEnvelope(text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    return void 0;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return void 0;
  const frame2 = value;
  if (typeof frame2["type"] !== "string") return void 0;
  return frame2;
}

// sdk-ts/src/errors.ts
var WsError = class extends Error {
  constructor() {
    super(...arguments);
    __publicField(this, "name", "WsError");
  }
};
var WsRequestError = class extends WsError {
  constructor(code, message) {
    super(message);
    __publicField(this, "code", code);
    __publicField(this, "name", "WsRequestError");
  }
};
var WsInvalidError = class extends WsRequestError {
  constructor(path, expected) {
    super("invalid_data", `${path}: expected ${expected}`);
    __publicField(this, "path", path);
    __publicField(this, "expected", expected);
    __publicField(this, "name", "WsInvalidError");
  }
};
var WsTimeoutError = class extends WsError {
  constructor() {
    super(...arguments);
    __publicField(this, "name", "WsTimeoutError");
  }
};
var WsClosedError = class extends WsError {
  constructor() {
    super(...arguments);
    __publicField(this, "name", "WsClosedError");
  }
};
var WsQueueFullError = class extends WsError {
  constructor() {
    super(...arguments);
    __publicField(this, "name", "WsQueueFullError");
  }
};

// sdk-ts/src/connection.ts
var OPEN = 1;
var Connection = class {
  constructor(url, options, events, tokens) {
    __publicField(this, "url", url);
    __publicField(this, "events", events);
    __publicField(this, "tokens", tokens);
    __publicField(this, "state", "connecting");
    /** Counts sockets opened, so an answer computed on one is not sent on the next. */
    __publicField(this, "generation", 0);
    /** Whether the client is closed for good: by the application, or by a close its reconnect policy does
     * not retry (3409, the 4000 range, ... see {@link closeCodePolicy}), or past `maxAttempts`. */
    __publicField(this, "closed", false);
    /** The close that ended the connection for good, when the server's (not the application's). */
    __publicField(this, "ended");
    __publicField(this, "socket");
    /** Frames waiting for a socket; a request's frame carries its id, so it leaves with the request. */
    __publicField(this, "queue", []);
    __publicField(this, "stateListeners", /* @__PURE__ */ new Set());
    __publicField(this, "attempt", 0);
    __publicField(this, "stableTimer");
    __publicField(this, "reconnectTimer");
    __publicField(this, "heartbeatTimer");
    __publicField(this, "lastSeen", 0);
    __publicField(this, "pingSentAt", 0);
    __publicField(this, "WebSocketImpl");
    __publicField(this, "reconnect");
    __publicField(this, "maxQueue");
    __publicField(this, "heartbeatIntervalMs");
    __publicField(this, "heartbeatTimeoutMs");
    __publicField(this, "random");
    __publicField(this, "protocol");
    __publicField(this, "tokenParam");
    /** Whether the next socket needs a new token first (the first one, and after the token was refused). */
    __publicField(this, "needToken");
    /** Handshakes refused with 3401 in a row: a fresh token refused too ends the retries. */
    __publicField(this, "tokenRefusals", 0);
    const impl = options.WebSocket ?? globalThis.WebSocket;
    if (!impl) throw new WsError("no WebSocket implementation: pass options.WebSocket (for example `ws` in Node)");
    this.WebSocketImpl = impl;
    const reconnect = options.reconnect ?? true;
    this.reconnect = reconnect === false ? void 0 : {
      baseDelayMs: 250,
      maxDelayMs: 1e4,
      maxAttempts: Number.POSITIVE_INFINITY,
      stableAfterMs: 5e3,
      onClose: closeCodePolicy,
      ...reconnect === true ? {} : reconnect
    };
    this.maxQueue = options.maxQueue ?? 100;
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? 2e4;
    this.heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 1e4;
    this.random = options.random ?? Math.random;
    this.protocol = options.protocol;
    this.tokenParam = options.tokenParam ?? "token";
    this.needToken = tokens !== void 0;
    this.open();
  }
  /** Sends `text` now, or queues it until a socket opens. Throws {@link WsClosedError} once closed and
   * {@link WsQueueFullError} when the queue is full. */
  write(text, requestId) {
    if (this.closed) throw this.closedError();
    if (this.state === "open" && this.socket?.readyState === OPEN) {
      this.socket.send(text);
      return;
    }
    if (this.queue.length >= this.maxQueue) {
      throw new WsQueueFullError(`${this.maxQueue} frames are already waiting for a connection`);
    }
    this.queue.push(requestId === void 0 ? { text } : { text, id: requestId });
  }
  /** Takes a settled request's frame out of the queue, so it is not sent after its caller gave up. */
  unqueue(id) {
    const at = this.queue.findIndex((entry) => entry.id === id);
    if (at >= 0) this.queue.splice(at, 1);
  }
  onState(listener) {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }
  /** What a `send` or `request` after the end is refused with: it names the close that ended it. */
  closedError() {
    const ended = this.ended;
    if (!ended) return new WsClosedError("the client is closed");
    const why = `${ended.code}${ended.reason ? `: ${ended.reason}` : ""}`;
    return new WsClosedError(`the connection ended for good (${why}); it is not reconnected`);
  }
  ready() {
    if (this.state === "open") return Promise.resolve();
    if (this.state === "closed") return Promise.reject(this.closedError());
    return new Promise((resolve, reject) => {
      const stop = this.onState((state) => {
        if (state === "open") {
          stop();
          resolve();
        } else if (state === "closed") {
          stop();
          reject(this.closedError());
        }
      });
    });
  }
  /** Ends the client for good, naming `code` and `reason` (a refresh the server refused). */
  end(code, reason) {
    if (this.closed) return;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.stableTimer);
    const socket = this.socket;
    this.dropSocket();
    socket?.close(1e3, "");
    this.closed = true;
    this.ended = { code, reason };
    this.queue.length = 0;
    this.events.lost(this.closedError());
    this.setState("closed", { code, reason });
  }
  close(code = 1e3, reason = "") {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.stableTimer);
    this.queue.length = 0;
    const socket = this.socket;
    this.dropSocket();
    socket?.close(code, reason);
    this.events.lost(new WsClosedError("the client is closed"));
    this.setState("closed", { code, reason });
  }
  open() {
    if (this.tokens && this.needToken) {
      this.tokens.next().then(
        () => {
          if (this.closed) return;
          this.needToken = false;
          this.openSocket();
        },
        (error) => {
          if (this.closed) return;
          this.retry("retry", { code: 1006, reason: `getToken failed: ${error instanceof Error ? error.message : String(error)}` });
        }
      );
      return;
    }
    this.openSocket();
  }
  openSocket() {
    const socket = new this.WebSocketImpl(this.address());
    this.socket = socket;
    socket.onopen = () => {
      this.generation += 1;
      const stableAfter = this.reconnect?.stableAfterMs ?? 0;
      this.stableTimer = setTimeout(() => this.attempt = 0, stableAfter);
      this.lastSeen = Date.now();
      this.pingSentAt = 0;
      this.events.opened((text) => socket.send(text));
      this.setState("open");
      this.startHeartbeat();
      for (const { text } of this.queue.splice(0)) socket.send(text);
    };
    socket.onmessage = (event) => {
      this.tokenRefusals = 0;
      this.lastSeen = Date.now();
      this.pingSentAt = 0;
      if (typeof event.data === "string") this.events.frame(event.data);
    };
    socket.onclose = (event) => this.lost(event.code, event.reason);
    socket.onerror = () => {
    };
  }
  /** The URL of the next attempt: the application's, asking for refusals as close frames (a browser
   * shows a refused handshake only as 1006) and naming the protocol's fingerprint when there is one. */
  address() {
    const url = typeof this.url === "function" ? this.url() : this.url;
    const [base = "", hash] = url.split("#", 2);
    const separator = base.includes("?") ? "&" : "?";
    const fingerprint = this.protocol === void 0 ? "" : `&ws_protocol=${encodeURIComponent(this.protocol)}`;
    const token = this.tokens?.token;
    const credential = token === void 0 ? "" : `&${encodeURIComponent(this.tokenParam)}=${encodeURIComponent(token)}`;
    const named = `${base}${separator}ws_refusal=close${fingerprint}${credential}`;
    return hash === void 0 ? named : `${named}#${hash}`;
  }
  lost(code, reason) {
    this.dropSocket();
    clearTimeout(this.stableTimer);
    this.events.lost(new WsClosedError(`connection closed (${code}${reason ? `: ${reason}` : ""})`));
    if (this.closed) return;
    const policy = this.reconnect;
    let decision = policy?.onClose(code) ?? "stop";
    if (policy && this.tokens && (code === 4001 || code === 3401 && this.tokenRefusals === 0)) {
      if (code === 3401) this.tokenRefusals += 1;
      this.needToken = true;
      decision = "retry";
    }
    this.retry(decision, { code, reason });
  }
  /** Opens again after the delay `decision` asks for, unless the policy says to stay closed. */
  retry(decision, close) {
    const policy = this.reconnect;
    if (!policy || decision === "stop" || this.attempt >= policy.maxAttempts) {
      this.closed = true;
      this.ended = close;
      this.queue.length = 0;
      this.setState("closed", close);
      return;
    }
    const delay = decision === "slow" ? policy.maxDelayMs : backoffDelay(this.attempt, policy, this.random);
    this.attempt += 1;
    this.setState("reconnecting", close);
    this.reconnectTimer = setTimeout(() => this.open(), delay);
  }
  /** Forgets the current socket without waiting for its close handshake. */
  dropSocket() {
    clearInterval(this.heartbeatTimer);
    const socket = this.socket;
    if (!socket) return;
    socket.onopen = socket.onmessage = socket.onclose = null;
    socket.onerror = () => {
    };
    this.socket = void 0;
  }
  startHeartbeat() {
    if (this.heartbeatIntervalMs <= 0) return;
    const tick = Math.max(10, Math.min(this.heartbeatIntervalMs, this.heartbeatTimeoutMs) / 2);
    this.heartbeatTimer = setInterval(() => {
      const now = Date.now();
      if (this.pingSentAt && now - this.pingSentAt >= this.heartbeatTimeoutMs) {
        const socket = this.socket;
        this.dropSocket();
        socket?.close(4e3, "heartbeat timeout");
        this.lost(1006, "heartbeat timeout");
      } else if (!this.pingSentAt && now - this.lastSeen >= this.heartbeatIntervalMs) {
        this.pingSentAt = now;
        this.socket?.send(JSON.stringify({ type: PING }));
      }
    }, tick);
  }
  setState(state, close) {
    this.state = state;
    for (const listener of this.stateListeners) listener(state, close);
  }
};

// sdk-ts/src/checked.ts
var unknownType = { path: "type", expected: "a message type of this protocol" };
var Checked = class {
  constructor(validators2, report) {
    __publicField(this, "validators", validators2);
    __publicField(this, "report", report);
  }
  /** Checks a frame of `type` whose `data` is checked by `table[type]`; reports and returns the error
   * when it does not fit. A type the table does not have does not fit either. */
  check(table, direction, type, frame2) {
    const validators2 = this.validators;
    if (!validators2) return void 0;
    const check = validators2[table]?.[type];
    const mismatch = check ? check(frame2.data ?? null, "data") : unknownType;
    if (!mismatch) return void 0;
    this.report({ direction, type, path: mismatch.path, expected: mismatch.expected, frame: frame2 });
    return new WsInvalidError(mismatch.path, mismatch.expected);
  }
  /** A server message (or server request) of this protocol. */
  received(frame2) {
    return this.check("server", "received", frame2.type, frame2);
  }
  /** The server's reply to this client's request of `type`. */
  reply(type, frame2) {
    return this.validators && type in this.validators.serverReplies ? this.check("serverReplies", "received", type, frame2) : void 0;
  }
  /** One item of the stream that answers this client's request of `type`. */
  item(type, frame2) {
    return this.validators?.serverItems && type in this.validators.serverItems ? this.check("serverItems", "received", type, frame2) : void 0;
  }
  /** A message or request the application sends. */
  sent(frame2) {
    return this.check("client", "sent", frame2.type, frame2);
  }
  /** This client's answer to the server's request of `type`. */
  answer(type, frame2) {
    return this.check("clientReplies", "sent", type, frame2);
  }
};

// sdk-ts/src/presence.ts
var PRESENCE_STATE = "$presence_state";
var PRESENCE_DIFF = "$presence_diff";
function entries(value) {
  const map = /* @__PURE__ */ new Map();
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    for (const [id, meta] of Object.entries(value)) map.set(id, meta);
  }
  return map;
}
var listed = (map) => [...map].map(([id, meta]) => ({ id, meta }));
var Presence = class {
  constructor(group) {
    __publicField(this, "group", group);
    __publicField(this, "byId", /* @__PURE__ */ new Map());
    __publicField(this, "members", []);
    __publicField(this, "count", 0);
    __publicField(this, "countsOnly", false);
    __publicField(this, "listeners", /* @__PURE__ */ new Set());
  }
  get(id) {
    return this.byId.get(id);
  }
  onChange(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  /** Applies a state (the whole list) or a diff (joins and leaves, applied as set operations). */
  apply(type, data) {
    const count = typeof data.count === "number" ? data.count : this.count;
    const joins = /* @__PURE__ */ new Map();
    const leaves = /* @__PURE__ */ new Map();
    if (type === PRESENCE_STATE) {
      const members = entries(data.members);
      this.countsOnly = data.members === void 0;
      for (const [id, meta] of this.byId) if (!members.has(id)) leaves.set(id, meta);
      for (const [id, meta] of members) if (!this.byId.has(id)) joins.set(id, meta);
      this.byId = members;
    } else {
      this.countsOnly = data.joins === void 0 && data.leaves === void 0;
      for (const [id, meta] of entries(data.leaves)) {
        if (this.byId.delete(id)) leaves.set(id, meta);
      }
      for (const [id, meta] of entries(data.joins)) {
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
  reset() {
    if (this.byId.size === 0 && this.count === 0) return;
    const leaves = this.members;
    this.byId = /* @__PURE__ */ new Map();
    this.members = [];
    this.count = 0;
    for (const listener of this.listeners) listener({ joins: [], leaves, count: 0 });
  }
};

// sdk-ts/src/groups.ts
var MAX_POSITIONS = 256;
var Groups = class {
  constructor() {
    /** The last position seen per group with history; frames at or before it are duplicates. */
    __publicField(this, "positions", /* @__PURE__ */ new Map());
    /** Member lists by group: one per group asked for or told about (the server bounds a client's groups). */
    __publicField(this, "presences", /* @__PURE__ */ new Map());
    __publicField(this, "recoveryListeners", /* @__PURE__ */ new Set());
  }
  /** The `$positions` frame to send first on a connection; `undefined` when no position is known. */
  positionsFrame() {
    if (this.positions.size === 0) return void 0;
    return JSON.stringify({ type: POSITIONS, data: Object.fromEntries(this.positions) });
  }
  /** Records a frame's position; `false` for a frame already seen (replayed and also delivered live). */
  advance(pos) {
    const known = this.positions.get(pos.group);
    if (known && known.epoch === pos.epoch && pos.offset <= known.offset) return false;
    this.remember(pos.group, { epoch: pos.epoch, offset: pos.offset });
    return true;
  }
  /** A `$position`: after a complete recovery the replayed frames follow and move the position; otherwise
   * the client starts from the history's current end. */
  positioned(data) {
    if (typeof data.group !== "string") return;
    if (data.recovered !== true && typeof data.epoch === "string" && typeof data.offset === "number") {
      this.remember(data.group, { epoch: data.epoch, offset: data.offset });
    } else if (data.recovered !== true) {
      this.positions.delete(data.group);
    }
    const recovery = { group: data.group };
    if (data.recovered !== void 0) recovery.recovered = data.recovered;
    if (data.reason !== void 0) recovery.reason = data.reason;
    for (const listener of this.recoveryListeners) listener(recovery);
  }
  position(group) {
    const known = this.positions.get(group);
    return known && { ...known };
  }
  presence(group) {
    let view = this.presences.get(group);
    if (!view) {
      view = new Presence(group);
      this.presences.set(group, view);
    }
    return view;
  }
  onRecovery(listener) {
    this.recoveryListeners.add(listener);
    return () => this.recoveryListeners.delete(listener);
  }
  /** The connection is gone: the server forgot this client's memberships. */
  reset() {
    for (const view of this.presences.values()) view.reset();
  }
  remember(group, position2) {
    this.positions.delete(group);
    this.positions.set(group, position2);
    if (this.positions.size > MAX_POSITIONS) {
      const oldest = this.positions.keys().next().value;
      if (oldest !== void 0) this.positions.delete(oldest);
    }
  }
};
var Group = class {
  constructor(name, groups, fetch) {
    __publicField(this, "name", name);
    __publicField(this, "groups", groups);
    __publicField(this, "fetch", fetch);
  }
  position() {
    return this.groups.position(this.name);
  }
  presence() {
    return this.groups.presence(this.name);
  }
  history(since = 0) {
    return this.fetch({ group: this.name, since });
  }
  onRecovery(listener) {
    return this.groups.onRecovery((recovery) => {
      if (recovery.group === this.name) listener(recovery);
    });
  }
};

// sdk-ts/src/requests.ts
var Requests = class {
  constructor(connection, timeoutMs, maxPending, checkReply) {
    __publicField(this, "connection", connection);
    __publicField(this, "timeoutMs", timeoutMs);
    __publicField(this, "maxPending", maxPending);
    __publicField(this, "checkReply", checkReply);
    __publicField(this, "pending", /* @__PURE__ */ new Map());
    __publicField(this, "nextId", 1);
  }
  /** Sends request `type` with `data` and resolves with the answer's data, as `T`. */
  start(type, data, timeoutMs = this.timeoutMs) {
    if (this.connection.closed) return Promise.reject(this.connection.closedError());
    if (this.pending.size >= this.maxPending) {
      return Promise.reject(new WsQueueFullError(`${this.maxPending} requests are already waiting`));
    }
    const id = this.allocate();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.settle(id, (p) => p.reject(new WsTimeoutError(`no answer to "${type}" within ${timeoutMs} ms`)));
      }, timeoutMs);
      this.pending.set(id, { type, resolve, reject, timer });
      try {
        this.connection.write(JSON.stringify({ ...frame(type, data), id }), id);
      } catch (error) {
        this.settle(id, (p) => p.reject(error));
      }
    });
  }
  /** A fresh id (1 up to 2^53 − 1, then 1 again): requests and streams share them. */
  allocate() {
    const id = this.nextId;
    this.nextId = this.nextId >= MAX_REQUEST_ID ? 1 : this.nextId + 1;
    return id;
  }
  /** Settles the request a `$reply` or `$error` answers; returns an `$error` that answers none. */
  answer(msg) {
    const waiting = msg.id !== void 0 && this.pending.has(msg.id);
    if (msg.type === ERROR) {
      const body = msg.data ?? {};
      const error = new WsRequestError(String(body.code ?? "unknown"), String(body.message ?? ""));
      if (!waiting) return error;
      this.settle(msg.id, (p) => p.reject(error));
    } else if (msg.type === REPLY && waiting) {
      this.settle(msg.id, (p) => {
        const invalid = this.checkReply(p.type, msg);
        if (invalid) p.reject(invalid);
        else p.resolve(msg.data ?? null);
      });
    }
    return void 0;
  }
  /** Rejects every request in flight with `error`. */
  failAll(error) {
    for (const id of [...this.pending.keys()]) this.settle(id, (p) => p.reject(error));
  }
  settle(id, action) {
    const pending = this.pending.get(id);
    if (!pending) return;
    clearTimeout(pending.timer);
    this.pending.delete(id);
    this.connection.unqueue(id);
    action(pending);
  }
};
function frame(type, data) {
  return data === void 0 || data === null ? { type } : { type, data };
}

// sdk-ts/src/streams.ts
var STREAM = "$stream";
var CHUNK = "$chunk";
var END = "$end";
var CANCEL = "$cancel";
var RESUME = "$resume";
var MAX_BUFFERED = 1024;
var Streams = class {
  constructor(connection, allocate, checkItem, maxStreams = 64) {
    __publicField(this, "connection", connection);
    __publicField(this, "allocate", allocate);
    __publicField(this, "checkItem", checkItem);
    __publicField(this, "maxStreams", maxStreams);
    __publicField(this, "byId", /* @__PURE__ */ new Map());
  }
  /** Sends stream request `type` and returns its items as they come. */
  open(type, data, options = {}) {
    const signal = options.signal;
    const id = this.allocate();
    const state = { type, key: void 0, last: 0, items: [], end: void 0, wake: void 0 };
    const fail = (error) => this.finish(id, error);
    if (this.connection.closed) {
      state.end = this.connection.closedError();
    } else if (this.byId.size >= this.maxStreams) {
      state.end = new WsQueueFullError(`${this.maxStreams} streams are already open`);
    } else if (signal?.aborted) {
      state.end = abortError(signal);
    } else {
      this.byId.set(id, state);
      try {
        this.connection.write(JSON.stringify({ ...frame(type, data), id }));
      } catch (error) {
        fail(error);
      }
    }
    const onAbort = () => {
      if (signal) this.cancel(id, abortError(signal));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    const streams = this;
    const iterator = {
      [Symbol.asyncIterator]() {
        return iterator;
      },
      async next() {
        for (; ; ) {
          if (state.items.length > 0) return { value: state.items.shift(), done: false };
          if (state.end !== void 0) {
            signal?.removeEventListener("abort", onAbort);
            const end = state.end;
            state.end = null;
            if (end !== null) throw end;
            return { value: void 0, done: true };
          }
          await new Promise((resolve) => state.wake = resolve);
        }
      },
      async return() {
        signal?.removeEventListener("abort", onAbort);
        streams.cancel(id, null);
        state.items = [];
        state.end = null;
        return { value: void 0, done: true };
      }
    };
    return iterator;
  }
  /** Routes a frame of one of this client's streams; `false` for any other frame. */
  receive(msg) {
    const state = msg.id === void 0 ? void 0 : this.byId.get(msg.id);
    if (!state || msg.id === void 0) return false;
    const id = msg.id;
    switch (msg.type) {
      case STREAM: {
        const key = msg.data?.stream;
        if (typeof key === "string") state.key = key;
        return true;
      }
      case CHUNK: {
        const seq = typeof msg.seq === "number" ? msg.seq : 0;
        if (seq <= state.last) return true;
        state.last = seq;
        const invalid = this.checkItem(state.type, msg);
        if (invalid) {
          this.cancel(id, invalid);
          return true;
        }
        if (state.items.length >= MAX_BUFFERED) {
          this.cancel(id, new WsQueueFullError(`more than ${MAX_BUFFERED} items waited for the loop`));
          return true;
        }
        state.items.push(msg.data ?? null);
        wake(state);
        return true;
      }
      case END:
        this.finish(id, null);
        return true;
      case "$error": {
        const body = msg.data ?? {};
        this.finish(id, new WsRequestError(String(body.code ?? "unknown"), String(body.message ?? "")));
        return true;
      }
      default:
        return false;
    }
  }
  /** The `$resume` of every stream waiting for a new connection: sent first on it. */
  resumes() {
    const frames = [];
    for (const [id, state] of this.byId) {
      if (state.key !== void 0) {
        frames.push(JSON.stringify({ type: RESUME, id, data: { stream: state.key, after: state.last } }));
      }
    }
    return frames;
  }
  /** The connection is gone: a stream whose key is known waits for the next one; the others fail. */
  lost(error) {
    for (const [id, state] of [...this.byId]) if (state.key === void 0) this.finish(id, error);
  }
  /** The client is closed for good: every stream fails with `error`. */
  closeAll(error) {
    for (const id of [...this.byId.keys()]) this.finish(id, error);
  }
  finish(id, end) {
    const state = this.byId.get(id);
    if (!state) return;
    this.byId.delete(id);
    if (state.end === void 0) state.end = end;
    wake(state);
  }
  /** Stops stream `id`: the server drops its producer; the loop ends with `end` (`null`: quietly). */
  cancel(id, end) {
    if (!this.byId.has(id)) return;
    this.finish(id, end);
    if (this.connection.state === "open") {
      try {
        this.connection.write(JSON.stringify({ type: CANCEL, data: { id } }));
      } catch {
      }
    }
  }
};
function wake(state) {
  const wake2 = state.wake;
  state.wake = void 0;
  wake2?.();
}
function abortError(signal) {
  return signal.reason instanceof Error ? signal.reason : new DOMException("the stream was cancelled", "AbortError");
}

// sdk-ts/src/session.ts
var SESSION = "$session";
var REFRESH = "$refresh";
var LEFT = "$left";
var MAX_RETRY_MS = 3e4;
var SessionKeeper = class {
  constructor(getToken, marginMs, host) {
    __publicField(this, "getToken", getToken);
    __publicField(this, "marginMs", marginMs);
    __publicField(this, "host", host);
    __publicField(this, "token");
    __publicField(this, "fetching");
    __publicField(this, "timer");
    __publicField(this, "refreshing", false);
    __publicField(this, "failures", 0);
  }
  /** A new token: the one being fetched, or a new fetch. Never two `getToken` calls at once. */
  next() {
    this.fetching ?? (this.fetching = Promise.resolve().then(() => this.getToken()).then((token) => this.token = token).finally(() => this.fetching = void 0));
    return this.fetching;
  }
  /** The server said when the session expires: the refresh is planned `marginMs` before, and never
   * sooner than halfway, so a short-lived token is not refreshed in a loop. */
  announced(expiry) {
    clearTimeout(this.timer);
    const left = expiry.expires_in_ms;
    if (typeof left !== "number") return;
    this.planRefresh(Math.max(left - this.marginMs, left / 2));
  }
  /** The connection is gone: its plan with it (the next connection's `$session` plans again). */
  stop() {
    clearTimeout(this.timer);
    this.timer = void 0;
  }
  planRefresh(delayMs) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.refresh(), delayMs);
  }
  async refresh() {
    if (this.refreshing) return;
    this.refreshing = true;
    const generation = this.host.generation();
    try {
      const token = await this.next();
      if (generation !== this.host.generation()) return;
      const expiry = await this.host.refresh(token);
      this.failures = 0;
      if (generation === this.host.generation()) this.announced(expiry);
    } catch (error) {
      if (generation !== this.host.generation()) return;
      if (error instanceof WsRequestError && (error.code === "unauthorized" || error.code === "forbidden")) {
        this.stop();
        this.host.end(`refresh refused: ${error.message}`);
        return;
      }
      this.failures += 1;
      this.planRefresh(Math.min(MAX_RETRY_MS, 500 * 2 ** Math.min(this.failures, 10)));
    } finally {
      this.refreshing = false;
    }
  }
};

// sdk-ts/src/client.ts
function createClient(url, options = {}) {
  return new Client(url, options);
}
var Client = class {
  constructor(url, options) {
    __publicField(this, "connection");
    __publicField(this, "requests");
    __publicField(this, "streams");
    __publicField(this, "groups", new Groups());
    __publicField(this, "listeners", /* @__PURE__ */ new Map());
    __publicField(this, "handlers", /* @__PURE__ */ new Map());
    __publicField(this, "errorListeners", /* @__PURE__ */ new Set());
    __publicField(this, "leftListeners", /* @__PURE__ */ new Set());
    __publicField(this, "checked");
    __publicField(this, "session");
    const report = options.onInvalid ?? ((invalid) => console.warn("ws-core-client: invalid frame", invalid));
    this.checked = new Checked(options.validate || void 0, report);
    this.session = options.getToken && new SessionKeeper(options.getToken, options.refreshMarginMs ?? 1e4, {
      refresh: (token) => this.requests.start(REFRESH, { token }),
      generation: () => this.connection.generation,
      end: (reason) => this.connection.end(4001, reason)
    });
    const events = {
      // Before anything the application sends on open (its joins), so that joining again recovers.
      opened: (send) => {
        const positions = this.groups.positionsFrame();
        if (positions !== void 0) send(positions);
        for (const resume of this.streams.resumes()) send(resume);
      },
      frame: (text) => this.receive(text),
      lost: (error) => {
        this.session?.stop();
        this.groups.reset();
        this.requests.failAll(error);
        this.streams.lost(error);
      }
    };
    this.connection = new Connection(url, options, events, this.session);
    this.requests = new Requests(
      this.connection,
      options.requestTimeoutMs ?? 1e4,
      options.maxPendingRequests ?? 1e3,
      (type, reply) => this.checked.reply(type, reply)
    );
    this.streams = new Streams(
      this.connection,
      () => this.requests.allocate(),
      (type, chunk) => this.checked.item(type, chunk)
    );
    this.connection.onState((state) => {
      if (state === "closed") this.streams.closeAll(this.connection.closedError());
    });
  }
  get state() {
    return this.connection.state;
  }
  send(type, ...data) {
    const envelope = frame(type, data[0]);
    const invalid = this.checked.sent(envelope);
    if (invalid) throw invalid;
    this.connection.write(JSON.stringify(envelope));
  }
  request(type, ...args) {
    const [data, options] = args;
    const invalid = this.checked.sent(frame(type, data));
    if (invalid) return Promise.reject(invalid);
    return this.requests.start(type, data, options?.timeoutMs);
  }
  stream(type, ...args) {
    const [data, options] = args;
    const invalid = this.checked.sent(frame(type, data));
    if (invalid) throw invalid;
    return this.streams.open(type, data, options);
  }
  on(type, listener) {
    let set = this.listeners.get(type);
    if (!set) this.listeners.set(type, set = /* @__PURE__ */ new Set());
    const entry = listener;
    set.add(entry);
    return () => set.delete(entry);
  }
  handle(type, handler) {
    const entry = handler;
    this.handlers.set(type, entry);
    return () => {
      if (this.handlers.get(type) === entry) this.handlers.delete(type);
    };
  }
  group(name) {
    return new Group(name, this.groups, (data) => this.system(HISTORY, data));
  }
  presence(group) {
    return this.groups.presence(group);
  }
  onRecovery(listener) {
    return this.groups.onRecovery(listener);
  }
  position(group) {
    return this.groups.position(group);
  }
  history(group, since = 0) {
    return this.group(group).history(since);
  }
  onState(listener) {
    return this.connection.onState(listener);
  }
  onError(listener) {
    this.errorListeners.add(listener);
    return () => this.errorListeners.delete(listener);
  }
  onLeft(listener) {
    this.leftListeners.add(listener);
    return () => this.leftListeners.delete(listener);
  }
  ready() {
    return this.connection.ready();
  }
  close(code = 1e3, reason = "") {
    this.connection.close(code, reason);
  }
  /** A request the SDK makes of the server itself, typed by {@link SystemRequests}. */
  system(type, data) {
    return this.requests.start(type, data);
  }
  receive(text) {
    const msg = parseEnvelope(text);
    if (!msg) return;
    if (this.streams.receive(msg)) return;
    if (msg.type === REPLY || msg.type === ERROR) {
      const unanswered = this.requests.answer(msg);
      if (unanswered) for (const listener of this.errorListeners) listener(unanswered);
      return;
    }
    if (msg.type === PONG) return;
    if (msg.type === SESSION) {
      this.session?.announced(msg.data ?? {});
      return;
    }
    if (msg.type === LEFT) {
      const left = msg.data ?? {};
      if (typeof left.group !== "string") return;
      this.groups.presence(left.group).reset();
      const told = { group: left.group, reason: String(left.reason ?? "") };
      for (const listener of this.leftListeners) listener(told);
      return;
    }
    if (msg.type === POSITION) {
      this.groups.positioned(msg.data);
      return;
    }
    if (msg.pos && !this.groups.advance(msg.pos)) return;
    if (msg.type === PRESENCE_STATE || msg.type === PRESENCE_DIFF) {
      const data = msg.data ?? {};
      if (typeof data.group === "string") this.groups.presence(data.group).apply(msg.type, data);
      return;
    }
    const invalid = this.checked.received(msg);
    const meta = msg.from === void 0 ? {} : { from: msg.from };
    const handler = this.handlers.get(msg.type);
    if (msg.id !== void 0) {
      const type = msg.type;
      void this.answer(msg.id, type, () => {
        if (!handler) throw Object.assign(new Error(`no handler for "${type}"`), { code: "unknown_type" });
        if (invalid) throw invalid;
        return handler(msg.data ?? null, meta);
      });
      if (handler) return;
    }
    if (invalid) return;
    for (const listener of this.listeners.get(msg.type) ?? []) listener(msg.data ?? null, meta);
  }
  /** Answers a server request of `type` with what `run` gives, on the connection it came on. */
  async answer(id, type, run) {
    const generation = this.connection.generation;
    let reply;
    try {
      reply = { type: REPLY, id, data: await run() ?? null };
      const invalid = this.checked.answer(type, reply);
      if (invalid) throw invalid;
    } catch (error) {
      const code = typeof error?.code === "string" ? error.code : "internal";
      const message = error instanceof Error ? error.message : String(error);
      reply = { type: ERROR, id, data: { code, message } };
    }
    if (generation !== this.connection.generation || this.connection.state !== "open") return;
    try {
      this.connection.write(JSON.stringify(reply));
    } catch {
    }
  }
};

// sdk-ts/src/validate.ts
function pathText(path) {
  if (typeof path === "string") return path;
  const up = pathText(path.up);
  return typeof path.key === "number" ? `${up}[${path.key}]` : `${up}.${path.key}`;
}
var miss = (path, expected) => ({ path: pathText(path), expected });
var nul = (v, p) => v === null ? void 0 : miss(p, "null");
var bool = (v, p) => typeof v === "boolean" ? void 0 : miss(p, "a boolean");
function range(min, max) {
  if (min !== void 0 && max !== void 0) return ` from ${min} to ${max}`;
  if (min !== void 0) return ` of at least ${min}`;
  if (max !== void 0) return ` of at most ${max}`;
  return "";
}
function num(integer, min, max) {
  const expected = `${integer ? "an integer" : "a number"}${range(min, max)}`;
  return (v, p) => typeof v === "number" && Number.isFinite(v) && (!integer || Number.isInteger(v)) && (min === void 0 || v >= min) && (max === void 0 || v <= max) ? void 0 : miss(p, expected);
}
function str(min, max) {
  const expected = `a string${min === void 0 && max === void 0 ? "" : ` of length${range(min, max)}`}`;
  return (v, p) => typeof v === "string" && (min === void 0 || v.length >= min) && (max === void 0 || v.length <= max) ? void 0 : miss(p, expected);
}
var isObject = (v) => typeof v === "object" && v !== null && !Array.isArray(v);
function object(properties, required, rest) {
  return (v, p) => {
    if (!isObject(v)) return miss(p, "an object");
    for (const key of required) if (!(key in v)) return miss({ up: p, key }, "a value (required)");
    for (const key in v) {
      const check = properties[key];
      const found = check ? check(v[key], { up: p, key }) : rest === false ? miss({ up: p, key }, "no such property") : rest?.(v[key], { up: p, key });
      if (found) return found;
    }
    return void 0;
  };
}
function array(items, prefix = [], min, max) {
  const expected = `an array${min === void 0 && max === void 0 ? "" : ` of length${range(min, max)}`}`;
  return (v, p) => {
    if (!Array.isArray(v) || min !== void 0 && v.length < min || max !== void 0 && v.length > max) {
      return miss(p, expected);
    }
    for (let i = 0; i < v.length; i++) {
      const check = i < prefix.length ? prefix[i] : items;
      const found = check?.(v[i], { up: p, key: i });
      if (found) return found;
    }
    return void 0;
  };
}
function some(checks, exactlyOne) {
  return (v, p) => {
    let fits = 0;
    let best;
    for (const check of checks) {
      const found = check(v, p);
      if (!found) fits += 1;
      else if (!best || found.path.length > best.path.length) best = found;
    }
    if (fits === 1 || fits > 1 && !exactlyOne) return void 0;
    if (fits > 1) return miss(p, "exactly one of its alternatives (several fit)");
    return best && best.path !== pathText(p) ? best : miss(p, best ? `one of: ${best.expected}, ...` : "a value");
  };
}
function ref(defs, name) {
  return (v, p) => defs[name](v, p);
}

// examples/whiteboard/sdk/protocol.ts
var PROTOCOL_FINGERPRINT = "97d65ec913d08f87";

// examples/whiteboard/sdk/validate.ts
var c = {};
c["Cleared"] = object({ removed: num(true, 0, 18446744073709552e3) }, ["removed"]);
c["InboundClear"] = nul;
c["InboundCursor"] = object(
  { x: num(true, -2147483648, 2147483647), y: num(true, -2147483648, 2147483647) },
  ["x", "y"]
);
c["InboundDrawing"] = object({ active: bool }, ["active"]);
c["InboundJoin"] = object({ board: str() }, ["board"]);
c["InboundStroke"] = object({ color: str(), points: array(ref(c, "Point")), width: num(true, 0, 255) }, [
  "color",
  "width",
  "points"
]);
c["Joined"] = object({
  board: str(),
  members: array(ref(c, "Member")),
  strokes: array(ref(c, "StrokeData")),
  you: ref(c, "Member")
}, ["board", "you", "strokes", "members"]);
c["Member"] = object({ color: str(), id: str(), user: str() }, ["id", "user", "color"]);
c["Point"] = object({ x: num(true, -2147483648, 2147483647), y: num(true, -2147483648, 2147483647) }, [
  "x",
  "y"
]);
c["StrokeData"] = object({
  color: str(),
  id: num(true, 0, 18446744073709552e3),
  points: array(ref(c, "Point")),
  user: str(),
  width: num(true, 0, 255)
}, ["id", "user", "color", "width", "points"]);
var s = {};
s["Member"] = object({ color: str(), id: str(), user: str() }, ["id", "user", "color"]);
s["OutboundCleared"] = object({ user: str() }, ["user"]);
s["OutboundCursor"] = object({
  color: str(),
  id: str(),
  user: str(),
  x: num(true, -2147483648, 2147483647),
  y: num(true, -2147483648, 2147483647)
}, ["id", "user", "color", "x", "y"]);
s["OutboundDrawing"] = object({ active: bool, user: str() }, ["user", "active"]);
s["OutboundPresence"] = object({ board: str(), members: array(ref(s, "Member")) }, ["board", "members"]);
s["OutboundStroke"] = ref(s, "StrokeData");
s["Point"] = object({ x: num(true, -2147483648, 2147483647), y: num(true, -2147483648, 2147483647) }, [
  "x",
  "y"
]);
s["StrokeData"] = object({
  color: str(),
  id: num(true, 0, 18446744073709552e3),
  points: array(ref(s, "Point")),
  user: str(),
  width: num(true, 0, 255)
}, ["id", "user", "color", "width", "points"]);
var validators = {
  server: {
    stroke: ref(s, "OutboundStroke"),
    cursor: ref(s, "OutboundCursor"),
    drawing: ref(s, "OutboundDrawing"),
    presence: ref(s, "OutboundPresence"),
    cleared: ref(s, "OutboundCleared")
  },
  serverReplies: { join: ref(c, "Joined"), clear: ref(c, "Cleared") },
  client: {
    join: ref(c, "InboundJoin"),
    stroke: ref(c, "InboundStroke"),
    cursor: ref(c, "InboundCursor"),
    drawing: ref(c, "InboundDrawing"),
    clear: some([nul, ref(c, "InboundClear")], false)
  },
  clientReplies: {}
};

// examples/whiteboard/sdk/client.ts
function createClient2(url, options) {
  return createClient(url, { validate: validators, protocol: PROTOCOL_FINGERPRINT, ...options });
}

// examples/whiteboard/web/app.ts
var $ = (id) => document.getElementById(id);
var canvas = $("board");
var ctx = canvas.getContext("2d");
var MAX_STROKE_POINTS = 1e3;
var client;
var me;
var strokes = 0;
var current;
var pendingCursor;
var activity = /* @__PURE__ */ new Map();
function drawStroke(stroke) {
  const [first, ...rest] = stroke.points;
  if (!first) return;
  ctx.strokeStyle = stroke.color;
  ctx.lineWidth = stroke.width;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(first.x, first.y);
  for (const p of rest.length ? rest : [first]) ctx.lineTo(p.x, p.y);
  ctx.stroke();
}
function counted(n) {
  strokes = n;
  canvas.dataset["strokes"] = String(n);
}
function clearCanvas() {
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  counted(0);
}
function renderMembers(members) {
  const list = $("members");
  list.replaceChildren(
    ...members.map((m) => {
      const li = document.createElement("li");
      li.textContent = m.id === me?.id ? `${m.user} (you)` : m.user;
      li.style.background = m.color;
      li.dataset["id"] = m.id;
      return li;
    })
  );
  const present = new Set(members.map((m) => m.id));
  for (const el of Array.from(document.querySelectorAll(".cursor"))) {
    if (!present.has(el.dataset["id"] ?? "")) el.remove();
  }
}
function renderActivity() {
  const now = Date.now();
  for (const [user, until] of activity) if (until <= now) activity.delete(user);
  const users = [...activity.keys()];
  $("activity").textContent = users.length === 0 ? "" : `${users.join(", ")} ${users.length === 1 ? "is" : "are"} drawing\u2026`;
}
function showCursor(id, user, color, x, y) {
  let el = document.querySelector(`.cursor[data-id="${CSS.escape(id)}"]`);
  if (!el) {
    el = document.createElement("div");
    el.className = "cursor";
    el.dataset["id"] = id;
    $("stage").append(el);
  }
  el.textContent = user;
  el.dataset["user"] = user;
  el.style.color = color;
  el.style.left = `${x}px`;
  el.style.top = `${y}px`;
}
function connect(name, board) {
  const url = new URL("/ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("token", name);
  const next = createClient2(url.toString());
  next.onState(async (state, close) => {
    if (state !== "open") {
      $("status").textContent = `${state}${close ? ` (${close.code})` : ""}`;
      return;
    }
    try {
      const joined = await next.request("join", { board });
      me = joined.you;
      clearCanvas();
      for (const stroke of joined.strokes) drawStroke(stroke);
      counted(joined.strokes.length);
      renderMembers(joined.members);
      $("status").textContent = `${name} on board ${joined.board}`;
    } catch (error) {
      const message = error instanceof WsRequestError ? `${error.code}: ${error.message}` : String(error);
      $("status").textContent = `cannot join: ${message}`;
    }
  });
  next.on("stroke", (stroke) => {
    drawStroke(stroke);
    counted(strokes + 1);
  });
  next.on("cursor", (c2) => showCursor(c2.id, c2.user, c2.color, c2.x, c2.y));
  next.on("drawing", (d) => {
    if (d.active) activity.set(d.user, Date.now() + 3e3);
    else activity.delete(d.user);
    renderActivity();
    setTimeout(renderActivity, 3100);
  });
  next.on("presence", (p) => renderMembers(p.members));
  next.on("cleared", (c2) => {
    clearCanvas();
    $("status").textContent = `${c2.user} cleared the board`;
  });
  return next;
}
function position(e) {
  const rect = canvas.getBoundingClientRect();
  return { x: Math.round(e.clientX - rect.left), y: Math.round(e.clientY - rect.top) };
}
function pen() {
  return { color: $("color").value, width: Number($("width").value) };
}
function finishStroke() {
  if (!current || current.length === 0) return;
  client?.send("stroke", { ...pen(), points: current });
  counted(strokes + 1);
  current = void 0;
}
canvas.addEventListener("pointerdown", (e) => {
  if (!client || !me) return;
  canvas.setPointerCapture(e.pointerId);
  current = [position(e)];
  client.send("drawing", { active: true });
});
canvas.addEventListener("pointermove", (e) => {
  const p = position(e);
  if (!pendingCursor) requestAnimationFrame(() => {
    if (pendingCursor) client?.send("cursor", pendingCursor);
    pendingCursor = void 0;
  });
  pendingCursor = p;
  if (!current) return;
  const last = current[current.length - 1];
  drawStroke({ ...pen(), points: [last, p] });
  current.push(p);
  if (current.length >= MAX_STROKE_POINTS) {
    finishStroke();
    current = [p];
  }
});
for (const end of ["pointerup", "pointercancel"]) {
  canvas.addEventListener(end, () => {
    if (!current) return;
    finishStroke();
    client?.send("drawing", { active: false });
  });
}
$("login").addEventListener("submit", (e) => {
  e.preventDefault();
  client?.close();
  me = void 0;
  client = connect($("name").value, $("board-name").value);
});
$("clear").addEventListener("click", async () => {
  await client?.request("clear", null);
  clearCanvas();
});
