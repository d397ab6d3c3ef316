// Test helpers: the chat example started on a free loopback port, and a client typed by its protocol.
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { createConnection, createServer } from "node:net";
import { chromium, type Browser, type Page } from "playwright-core";
import WebSocket, { WebSocketServer, type WebSocket as ServerSocket } from "ws";
import {
  createClient,
  type ClientOptions,
  type DataOf,
  type InvalidFrame,
  type TypeOf,
  type WebSocketConstructor,
  type WsClient,
} from "../src/index.js";
import type { Protocol } from "../../examples/chat/sdk/protocol.js";
import { validators } from "../../examples/chat/sdk/validate.js";

/** The workspace root: the nearest directory above this file with a Cargo.toml. */
export const root = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "Cargo.toml"))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error("no Cargo.toml above the tests");
    dir = parent;
  }
  return dir;
})();

export interface Chat {
  process: ChildProcess;
  host: string;
  port: number;
  url(token: string): string;
  /** SIGTERM: clients get close 1001, then the process exits. */
  stop(): Promise<void>;
  /** SIGKILL: connections drop without a close frame. */
  kill(): Promise<void>;
}

/** Starts `target/debug/chat` (built by scripts/test) on `port` (0: a free one). */
export async function startChat(port = 0): Promise<Chat> {
  return startExample("chat", port);
}

/** Starts the example binary `target/debug/NAME` (built by scripts/test) on `port` (0: a free one), with
 * more flags if given. */
export async function startExample(name: string, port = 0, flags: string[] = []): Promise<Chat> {
  const binary = join(root, "target", "debug", name);
  if (!existsSync(binary)) throw new Error(`${binary} is missing: run \`cargo build -p ${name}\` first`);
  const child = spawn(binary, ["--port", String(port), ...flags], { stdio: ["ignore", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout! });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const [first] = (await Promise.race([
    once(lines, "line"),
    new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${name} did not start`)), 10_000))),
  ]).finally(() => clearTimeout(timer))) as [string];
  const match = /^listening on http:\/\/([\d.]+):(\d+)$/.exec(first);
  if (!match) throw new Error(`unexpected first line: ${first}`);
  const host = match[1]!;
  const actual = Number(match[2]);
  return {
    process: child,
    host,
    port: actual,
    url: (token) => `ws://${host}:${actual}/ws?token=${encodeURIComponent(token)}`,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, "exit");
      child.kill("SIGTERM");
      await exited;
    },
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, "exit");
      child.kill("SIGKILL");
      await exited;
    },
  };
}

/** Every frame a chat client of these tests found not to fit the protocol: none should. */
export const invalidFrames: InvalidFrame[] = [];

/** A chat client on `ws`, Node 20's WebSocket, checking frames with the chat's generated validators. */
export function chatClient(url: string, options: ClientOptions = {}): WsClient<Protocol> {
  return createClient<Protocol>(url, {
    WebSocket: WebSocket as unknown as WebSocketConstructor,
    validate: validators,
    onInvalid: (frame) => invalidFrames.push(frame),
    ...options,
  });
}

/** What the pages' clients reported as invalid frames (the generated client warns on the console): none
 * should be. */
export const invalidInPages: string[] = [];

/** Records what the page's client reports as invalid frames, in {@link invalidInPages}. */
export function watchInvalid(page: Page): Page {
  page.on("console", (message) => {
    if (message.text().includes("invalid frame")) invalidInPages.push(message.text());
  });
  return page;
}

/** The next server message of one type. */
export function nextMessage<K extends TypeOf<Protocol["server"]>>(
  client: WsClient<Protocol>,
  type: K,
  timeoutMs = 5_000,
): Promise<DataOf<Protocol["server"], K>> {
  return next<DataOf<Protocol["server"], K>>((listener) => client.on(type, listener), timeoutMs);
}

/** The next value a subscription delivers. */
export function next<T>(subscribe: (listener: (data: T) => void) => () => void, timeoutMs = 5_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error("no message in time"));
    }, timeoutMs);
    const stop = subscribe((data) => {
      clearTimeout(timer);
      stop();
      resolve(data);
    });
  });
}


export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `done()` holds, checking every 10 ms; fails naming `what` after `timeoutMs`. */
export async function until(what: string, done: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Debian's Chromium, headless, with the flags this machine's closed network needs (`CHROMIUM_PATH`
 * overrides the binary). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** The chat page of `chat`, logged in as `name`. */
export async function openChatPage(browser: Browser, chat: Chat, name: string): Promise<Page> {
  const page = watchInvalid(await browser.newPage({ viewport: { width: 820, height: 700 } }));
  await page.goto(`http://${chat.host}:${chat.port}/`);
  await page.fill("#name", name);
  await page.click("#login button");
  await page.waitForSelector(`text=connected as ${name} (`);
  return page;
}

/** Joins `room` from the page's form. */
export async function joinRoomInPage(page: Page, room: string): Promise<void> {
  await page.fill("#room", room);
  await page.click("#join button:not(.secondary)");
  await page.waitForSelector(`text=joined #${room}`);
}

export interface Redis {
  url: string;
  stop(): Promise<void>;
}

/** A private `redis-server` on a free loopback port, without persistence (scripts/test installs Debian's). */
export async function startRedis(): Promise<Redis> {
  const port = await new Promise<number>((resolve, reject) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
  const child = spawn("redis-server", ["--bind", "127.0.0.1", "--port", String(port), "--save", "", "--appendonly", "no"], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  const deadline = Date.now() + 10_000;
  for (;;) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = createConnection(port, "127.0.0.1", () => {
        socket.destroy();
        resolve(true);
      }).on("error", () => resolve(false));
    });
    if (up) break;
    if (Date.now() > deadline) throw new Error("redis-server did not start");
    await sleep(20);
  }
  return {
    url: `redis://127.0.0.1:${port}/`,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, "exit");
      child.kill("SIGKILL");
      await exited;
    },
  };
}

/** A bare WebSocket server on a free loopback port; `received` holds every frame it got, parsed, and
 * `urls` the URL of each connection. */
export async function bareServer(onConnection: (socket: ServerSocket, index: number) => void = () => {}) {
  const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await once(server, "listening");
  const received: { type: string; id?: number; data?: unknown }[] = [];
  const urls: string[] = [];
  let connections = 0;
  server.on("connection", (socket, request) => {
    urls.push(request.url ?? "");
    socket.on("message", (data) => received.push(JSON.parse(String(data))));
    onConnection(socket, connections++);
  });
  const port = (server.address() as { port: number }).port;
  return {
    url: `ws://127.0.0.1:${port}/ws`,
    received,
    urls,
    connections: () => connections,
    sockets: () => [...server.clients],
    async close() {
      for (const client of server.clients) client.terminate();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

