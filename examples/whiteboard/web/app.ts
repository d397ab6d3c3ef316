// The whiteboard page, on the typed client generated from the Rust enums. Bundled into ../static/app.js by
// sdk-ts/scripts/build-page.mjs.
import { type Client, createClient, type Member, type Point, type StrokeData, WsRequestError } from "../sdk/client.js";

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const canvas = $<HTMLCanvasElement>("board");
const ctx = canvas.getContext("2d")!;
/** The server's bound on one stroke; a longer line is sent as several strokes. */
const MAX_STROKE_POINTS = 1000;

let client: Client | undefined;
let me: Member | undefined;
let strokes = 0;
let current: Point[] | undefined;
let pendingCursor: Point | undefined;
const activity = new Map<string, number>();

function drawStroke(stroke: Pick<StrokeData, "color" | "width" | "points">): void {
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

function counted(n: number): void {
  strokes = n;
  canvas.dataset["strokes"] = String(n);
}

function clearCanvas(): void {
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  counted(0);
}

function renderMembers(members: Member[]): void {
  const list = $("members");
  list.replaceChildren(
    ...members.map((m) => {
      const li = document.createElement("li");
      li.textContent = m.id === me?.id ? `${m.user} (you)` : m.user;
      li.style.background = m.color;
      li.dataset["id"] = m.id;
      return li;
    }),
  );
  // Cursors of members who left go with them.
  const present = new Set(members.map((m) => m.id));
  for (const el of Array.from(document.querySelectorAll<HTMLElement>(".cursor"))) {
    if (!present.has(el.dataset["id"] ?? "")) el.remove();
  }
}

function renderActivity(): void {
  const now = Date.now();
  for (const [user, until] of activity) if (until <= now) activity.delete(user);
  const users = [...activity.keys()];
  $("activity").textContent =
    users.length === 0 ? "" : `${users.join(", ")} ${users.length === 1 ? "is" : "are"} drawing…`;
}

function showCursor(id: string, user: string, color: string, x: number, y: number): void {
  let el = document.querySelector<HTMLElement>(`.cursor[data-id="${CSS.escape(id)}"]`);
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

function connect(name: string, board: string): Client {
  const url = new URL("/ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("token", name);
  const next = createClient(url.toString());
  next.onState(async (state, close) => {
    if (state !== "open") {
      $("status").textContent = `${state}${close ? ` (${close.code})` : ""}`;
      return;
    }
    try {
      // Joined again after every reconnect: the reply brings the strokes drawn meanwhile.
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
    if (d.active) activity.set(d.user, Date.now() + 3000);
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

function position(e: PointerEvent): Point {
  const rect = canvas.getBoundingClientRect();
  return { x: Math.round(e.clientX - rect.left), y: Math.round(e.clientY - rect.top) };
}

function pen(): { color: string; width: number } {
  return { color: $<HTMLInputElement>("color").value, width: Number($<HTMLInputElement>("width").value) };
}

function finishStroke(): void {
  if (!current || current.length === 0) return;
  client?.send("stroke", { ...pen(), points: current });
  counted(strokes + 1);
  current = undefined;
}

canvas.addEventListener("pointerdown", (e) => {
  if (!client || !me) return;
  canvas.setPointerCapture(e.pointerId);
  current = [position(e)];
  client.send("drawing", { active: true });
});

canvas.addEventListener("pointermove", (e) => {
  const p = position(e);
  // One cursor message per animation frame at most; the server keeps only the newest for a slow reader.
  if (!pendingCursor) requestAnimationFrame(() => {
    if (pendingCursor) client?.send("cursor", pendingCursor);
    pendingCursor = undefined;
  });
  pendingCursor = p;
  if (!current) return;
  const last = current[current.length - 1]!;
  drawStroke({ ...pen(), points: [last, p] });
  current.push(p);
  if (current.length >= MAX_STROKE_POINTS) {
    finishStroke();
    current = [p];
  }
});

for (const end of ["pointerup", "pointercancel"] as const) {
  canvas.addEventListener(end, () => {
    if (!current) return;
    finishStroke();
    client?.send("drawing", { active: false });
  });
}

$("login").addEventListener("submit", (e) => {
  e.preventDefault();
  client?.close();
  me = undefined;
  client = connect($<HTMLInputElement>("name").value, $<HTMLInputElement>("board-name").value);
});

$("clear").addEventListener("click", async () => {
  await client?.request("clear", null);
  clearCanvas();
});
