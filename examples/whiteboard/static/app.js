// Built from examples/whiteboard/web/app.ts by sdk-ts/scripts/build-page.mjs. Do not edit.
var __defProp = Object.defineProperty;
var __defNormalProp = (obj, key, value) => key in obj ? __defProp(obj, key, { enumerable: true, configurable: true, writable: true, value }) : obj[key] = value;
var __publicField = (obj, key, value) => __defNormalProp(obj, typeof key !== "symbol" ? key + "" : key, value);

// sdk-ts/src/backoff.ts
function closeCodePolicy(code) {
  if (code === 1002 || code === 1003 || code === 1007 || code === 1009) return "stop";
  if (code >= 4e3 && code <= 4999) return "stop";
  if (code === 1008) return "slow";
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
var Presence = class {
  constructor(group) {
    __publicField(this, "group", group);
    __publicField(this, "members", /* @__PURE__ */ new Map());
    __publicField(this, "count", 0);
    __publicField(this, "countsOnly", false);
    __publicField(this, "listeners", /* @__PURE__ */ new Set());
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
      for (const [id, meta] of this.members) if (!members.has(id)) leaves.set(id, meta);
      for (const [id, meta] of members) if (!this.members.has(id)) joins.set(id, meta);
      this.members = members;
    } else {
      this.countsOnly = data.joins === void 0 && data.leaves === void 0;
      for (const [id, meta] of entries(data.leaves)) {
        if (this.members.delete(id)) leaves.set(id, meta);
      }
      for (const [id, meta] of entries(data.joins)) {
        if (!this.members.has(id)) joins.set(id, meta);
        this.members.set(id, meta);
      }
    }
    this.count = count;
    for (const listener of this.listeners) listener({ joins, leaves, count });
  }
  /** The connection is gone: the server forgot this client's groups, so the list is empty until a new
   * join brings a new state. */
  reset() {
    if (this.members.size === 0 && this.count === 0) return;
    const leaves = this.members;
    this.members = /* @__PURE__ */ new Map();
    this.count = 0;
    for (const listener of this.listeners) listener({ joins: /* @__PURE__ */ new Map(), leaves, count: 0 });
  }
};

// sdk-ts/src/client.ts
var MAX_POSITIONS = 256;
var OPEN = 1;
function createClient(url, options = {}) {
  return new Client(url, options);
}
var Client = class {
  constructor(url, options) {
    __publicField(this, "url", url);
    __publicField(this, "state", "connecting");
    __publicField(this, "socket");
    /** Frames waiting for a connection; a request's frame carries its id, so it leaves with the request. */
    __publicField(this, "queue", []);
    __publicField(this, "pending", /* @__PURE__ */ new Map());
    __publicField(this, "listeners", /* @__PURE__ */ new Map());
    __publicField(this, "handlers", /* @__PURE__ */ new Map());
    __publicField(this, "stateListeners", /* @__PURE__ */ new Set());
    __publicField(this, "errorListeners", /* @__PURE__ */ new Set());
    /** Member lists by group: one per group asked for or told about (the server bounds a client's groups). */
    __publicField(this, "presences", /* @__PURE__ */ new Map());
    /** The last position seen per group with history; frames at or before it are duplicates. */
    __publicField(this, "positions", /* @__PURE__ */ new Map());
    __publicField(this, "recoveryListeners", /* @__PURE__ */ new Set());
    __publicField(this, "nextId", 1);
    __publicField(this, "attempt", 0);
    /** Counts connections, so an answer computed on one is not sent on the next. */
    __publicField(this, "generation", 0);
    __publicField(this, "stableTimer");
    __publicField(this, "closedByUser", false);
    __publicField(this, "reconnectTimer");
    __publicField(this, "heartbeatTimer");
    __publicField(this, "lastSeen", 0);
    __publicField(this, "pingSentAt", 0);
    __publicField(this, "WebSocketImpl");
    __publicField(this, "reconnect");
    __publicField(this, "maxQueue");
    __publicField(this, "requestTimeoutMs");
    __publicField(this, "maxPendingRequests");
    __publicField(this, "heartbeatIntervalMs");
    __publicField(this, "heartbeatTimeoutMs");
    __publicField(this, "random");
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
    this.requestTimeoutMs = options.requestTimeoutMs ?? 1e4;
    this.maxPendingRequests = options.maxPendingRequests ?? 1e3;
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? 2e4;
    this.heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 1e4;
    this.random = options.random ?? Math.random;
    this.connect();
  }
  send(type, ...data) {
    this.write(frame(type, data[0]));
  }
  request(type, ...args) {
    const [data, options] = args;
    if (this.closedByUser) return Promise.reject(new WsClosedError("the client is closed"));
    if (this.pending.size >= this.maxPendingRequests) {
      return Promise.reject(new WsQueueFullError(`${this.maxPendingRequests} requests are already waiting`));
    }
    const id = this.nextId;
    this.nextId = this.nextId >= MAX_REQUEST_ID ? 1 : this.nextId + 1;
    const timeoutMs = options?.timeoutMs ?? this.requestTimeoutMs;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.settle(id, (p) => p.reject(new WsTimeoutError(`no answer to "${type}" within ${timeoutMs} ms`)));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      try {
        this.write({ ...frame(type, data), id }, id);
      } catch (error) {
        this.settle(id, (p) => p.reject(error));
      }
    });
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
  onState(listener) {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }
  onError(listener) {
    this.errorListeners.add(listener);
    return () => this.errorListeners.delete(listener);
  }
  ready() {
    if (this.state === "open") return Promise.resolve();
    if (this.state === "closed") return Promise.reject(new WsClosedError("the client is closed"));
    return new Promise((resolve, reject) => {
      const stop = this.onState((state) => {
        if (state === "open") {
          stop();
          resolve();
        } else if (state === "closed") {
          stop();
          reject(new WsClosedError("the client is closed"));
        }
      });
    });
  }
  close(code = 1e3, reason = "") {
    this.closedByUser = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.stableTimer);
    this.queue.length = 0;
    const socket = this.socket;
    this.dropSocket();
    socket?.close(code, reason);
    this.failPending(new WsClosedError("the client is closed"));
    for (const view of this.presences.values()) view.reset();
    this.setState("closed", { code, reason });
  }
  connect() {
    const socket = new this.WebSocketImpl(typeof this.url === "function" ? this.url() : this.url);
    this.socket = socket;
    socket.onopen = () => {
      this.generation += 1;
      const stableAfter = this.reconnect?.stableAfterMs ?? 0;
      this.stableTimer = setTimeout(() => this.attempt = 0, stableAfter);
      this.lastSeen = Date.now();
      this.pingSentAt = 0;
      if (this.positions.size > 0) {
        socket.send(JSON.stringify({ type: POSITIONS, data: Object.fromEntries(this.positions) }));
      }
      this.setState("open");
      this.startHeartbeat();
      for (const { text } of this.queue.splice(0)) socket.send(text);
    };
    socket.onmessage = (event) => {
      this.lastSeen = Date.now();
      this.pingSentAt = 0;
      if (typeof event.data === "string") this.receive(event.data);
    };
    socket.onclose = (event) => this.lost(event.code, event.reason);
    socket.onerror = () => {
    };
  }
  receive(text) {
    const msg = parseEnvelope(text);
    if (!msg) return;
    if (msg.type === REPLY || msg.type === ERROR) {
      const pending = msg.id === void 0 ? void 0 : this.pending.get(msg.id);
      if (msg.type === ERROR) {
        const body = msg.data ?? {};
        const error = new WsRequestError(String(body.code ?? "unknown"), String(body.message ?? ""));
        if (pending) this.settle(msg.id, (p) => p.reject(error));
        else for (const listener of this.errorListeners) listener(error);
      } else if (pending) {
        this.settle(msg.id, (p) => p.resolve(msg.data ?? null));
      }
      return;
    }
    if (msg.type === PONG) return;
    if (msg.type === POSITION) {
      this.positioned(msg.data);
      return;
    }
    if (msg.pos && !this.advance(msg.pos)) return;
    if (msg.type === PRESENCE_STATE || msg.type === PRESENCE_DIFF) {
      const data = msg.data ?? {};
      if (typeof data.group === "string") this.presenceOf(data.group).apply(msg.type, data);
      return;
    }
    const meta = msg.from === void 0 ? {} : { from: msg.from };
    const handler = this.handlers.get(msg.type);
    if (msg.id !== void 0) {
      const type = msg.type;
      void this.answer(msg.id, () => {
        if (!handler) throw Object.assign(new Error(`no handler for "${type}"`), { code: "unknown_type" });
        return handler(msg.data ?? null, meta);
      });
      if (handler) return;
    }
    for (const listener of this.listeners.get(msg.type) ?? []) listener(msg.data ?? null, meta);
  }
  async answer(id, run) {
    const generation = this.generation;
    let reply;
    try {
      reply = { type: REPLY, id, data: await run() ?? null };
    } catch (error) {
      const code = typeof error?.code === "string" ? error.code : "internal";
      const message = error instanceof Error ? error.message : String(error);
      reply = { type: ERROR, id, data: { code, message } };
    }
    if (generation !== this.generation || this.state !== "open") return;
    try {
      this.write(reply);
    } catch {
    }
  }
  settle(id, action) {
    const pending = this.pending.get(id);
    if (!pending) return;
    clearTimeout(pending.timer);
    this.pending.delete(id);
    this.unqueue(id);
    action(pending);
  }
  /** Takes a settled request's frame out of the queue, so it is not sent after its caller gave up. */
  unqueue(id) {
    const at = this.queue.findIndex((entry) => entry.id === id);
    if (at >= 0) this.queue.splice(at, 1);
  }
  write(envelope, requestId) {
    if (this.closedByUser) throw new WsClosedError("the client is closed");
    const text = JSON.stringify(envelope);
    if (this.state === "open" && this.socket?.readyState === OPEN) {
      this.socket.send(text);
      return;
    }
    if (this.queue.length >= this.maxQueue) {
      throw new WsQueueFullError(`${this.maxQueue} frames are already waiting for a connection`);
    }
    this.queue.push(requestId === void 0 ? { text } : { text, id: requestId });
  }
  /** Records a frame's position; `false` for a frame already seen (replayed and also delivered live). */
  advance(pos) {
    const known = this.positions.get(pos.group);
    if (known && known.epoch === pos.epoch && pos.offset <= known.offset) return false;
    this.remember(pos.group, { epoch: pos.epoch, offset: pos.offset });
    return true;
  }
  remember(group, position2) {
    this.positions.delete(group);
    this.positions.set(group, position2);
    if (this.positions.size > MAX_POSITIONS) {
      const oldest = this.positions.keys().next().value;
      if (oldest !== void 0) this.positions.delete(oldest);
    }
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
  onRecovery(listener) {
    this.recoveryListeners.add(listener);
    return () => this.recoveryListeners.delete(listener);
  }
  history(group, since = 0) {
    const call = this.request;
    return call.call(this, HISTORY, { group, since });
  }
  position(group) {
    const known = this.positions.get(group);
    return known && { ...known };
  }
  presenceOf(group) {
    let view = this.presences.get(group);
    if (!view) {
      view = new Presence(group);
      this.presences.set(group, view);
    }
    return view;
  }
  presence(group) {
    return this.presenceOf(group);
  }
  lost(code, reason) {
    this.dropSocket();
    for (const view of this.presences.values()) view.reset();
    clearTimeout(this.stableTimer);
    this.failPending(new WsClosedError(`connection closed (${code}${reason ? `: ${reason}` : ""})`));
    if (this.closedByUser) return;
    const policy = this.reconnect;
    const decision = policy?.onClose(code) ?? "stop";
    if (!policy || decision === "stop" || this.attempt >= policy.maxAttempts) {
      this.queue.length = 0;
      this.setState("closed", { code, reason });
      return;
    }
    const delay = decision === "slow" ? policy.maxDelayMs : backoffDelay(this.attempt, policy, this.random);
    this.attempt += 1;
    this.setState("reconnecting", { code, reason });
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }
  /** Forgets the current socket without waiting for its close handshake. */
  dropSocket() {
    clearInterval(this.heartbeatTimer);
    const socket = this.socket;
    if (!socket) return;
    socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
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
  failPending(error) {
    for (const id of [...this.pending.keys()]) this.settle(id, (p) => p.reject(error));
  }
  setState(state, close) {
    this.state = state;
    for (const listener of this.stateListeners) listener(state, close);
  }
};
function frame(type, data) {
  return data === void 0 || data === null ? { type } : { type, data };
}

// examples/whiteboard/sdk/client.ts
function createClient2(url, options) {
  return createClient(url, options);
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
  next.on("cursor", (c) => showCursor(c.id, c.user, c.color, c.x, c.y));
  next.on("drawing", (d) => {
    if (d.active) activity.set(d.user, Date.now() + 3e3);
    else activity.delete(d.user);
    renderActivity();
    setTimeout(renderActivity, 3100);
  });
  next.on("presence", (p) => renderMembers(p.members));
  next.on("cleared", (c) => {
    clearCanvas();
    $("status").textContent = `${c.user} cleared the board`;
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
