// The live websocket client (/ws, docs/api.md): subscriptions with snapshot-then-change delivery,
// actions answered as tasks, server pings, and reconnection with exponential backoff that
// resubscribes every topic. I/O is injected (socket factory, timers, random) so the state machine
// is tested without a browser or a server.

import type { TaskMessage } from "./types";

export type ConnectionStatus = "connecting" | "open" | "reconnecting" | "closed";

export interface ConnectionInfo {
  status: ConnectionStatus;
  /** failed attempts since the last successful connection */
  attempt: number;
  /** when the next attempt is due (ms, the timers' clock), null unless reconnecting */
  nextRetryAt: number | null;
  /** false until the first successful connection */
  everConnected: boolean;
}

export interface SocketLike {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: unknown) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  now(): number;
}

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  factor: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 15_000, factor: 2 };

/** Delay before reconnect attempt `attempt` (0-based): exponential, capped, with jitter in [50 %, 100 %]. */
export function backoffDelay(attempt: number, opts: BackoffOptions, random: () => number): number {
  const raw = Math.min(opts.maxMs, opts.initialMs * Math.pow(opts.factor, Math.max(0, attempt)));
  return Math.round(raw * (0.5 + 0.5 * random()));
}

export type TopicKind = "snapshot" | "change";
export type TopicHandler = (kind: TopicKind, data: unknown) => void;

export interface LiveClientOptions {
  url: string;
  createSocket: (url: string) => SocketLike;
  timers?: Timers;
  random?: () => number;
  backoff?: BackoffOptions;
  /** close and reconnect when nothing at all arrived for this long (the server pings every 10 s) */
  idleTimeoutMs?: number;
  onStatus?: (info: ConnectionInfo) => void;
}

export class TaskError extends Error {
  constructor(
    message: string,
    readonly status: string,
  ) {
    super(message);
    this.name = "TaskError";
  }
}

interface PendingTask {
  resolve: (msg: TaskMessage) => void;
  reject: (err: Error) => void;
  onUpdate?: (msg: TaskMessage) => void;
}

const browserTimers: Timers = {
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (h) => globalThis.clearTimeout(h as ReturnType<typeof setTimeout>),
  now: () => Date.now(),
};

export class LiveClient {
  private socket: SocketLike | null = null;
  private readonly handlers = new Map<string, Set<TopicHandler>>();
  private readonly tasks = new Map<string, PendingTask>();
  private readonly timers: Timers;
  private readonly random: () => number;
  private readonly backoff: BackoffOptions;
  private readonly idleTimeoutMs: number;
  private retryHandle: unknown = null;
  private idleHandle: unknown = null;
  private nextId = 1;
  private started = false;
  private info: ConnectionInfo = {
    status: "closed",
    attempt: 0,
    nextRetryAt: null,
    everConnected: false,
  };

  constructor(private readonly opts: LiveClientOptions) {
    this.timers = opts.timers ?? browserTimers;
    this.random = opts.random ?? Math.random;
    this.backoff = opts.backoff ?? DEFAULT_BACKOFF;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 35_000;
  }

  get connection(): ConnectionInfo {
    return this.info;
  }

  /** Topics with at least one handler: what the client (re)subscribes after each connect. */
  get topics(): string[] {
    return [...this.handlers.keys()];
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.connect();
  }

  stop(): void {
    this.started = false;
    this.clearRetry();
    this.clearIdle();
    const s = this.socket;
    this.socket = null;
    if (s) {
      detach(s);
      s.close(1000, "client stopped");
    }
    this.failTasks("connection closed");
    this.setInfo({ status: "closed", attempt: 0, nextRetryAt: null });
  }

  /** Reconnect now instead of waiting for the backoff timer (the banner's "Retry now"). */
  retryNow(): void {
    if (!this.started || this.info.status !== "reconnecting") return;
    this.clearRetry();
    this.connect();
  }

  /** Subscribe a handler; the first handler of a topic subscribes on the server. Returns the unsubscribe. */
  subscribe(topic: string, handler: TopicHandler): () => void {
    let set = this.handlers.get(topic);
    if (!set) {
      set = new Set();
      this.handlers.set(topic, set);
      this.sendRaw({ action: "subscribe", topic });
    } else if (this.info.status === "open") {
      // A second subscriber needs a snapshot of its own: ask the server again (idempotent).
      this.sendRaw({ action: "subscribe", topic });
    }
    set.add(handler);
    return () => {
      const current = this.handlers.get(topic);
      if (!current || !current.delete(handler)) return;
      if (current.size === 0) {
        this.handlers.delete(topic);
        this.sendRaw({ action: "unsubscribe", topic });
      }
    };
  }

  /**
   * Send an action (run, stop, status, command, get_tag, get_stats). Resolves with the final task
   * message when it finishes; rejects with TaskError on exception/interrupted or a lost connection.
   */
  request(
    action: string,
    fields: Record<string, unknown>,
    onUpdate?: (msg: TaskMessage) => void,
  ): Promise<TaskMessage> {
    const id = `c${this.nextId++}`;
    return new Promise<TaskMessage>((resolve, reject) => {
      if (this.info.status !== "open") {
        reject(new TaskError("not connected to the server", "interrupted"));
        return;
      }
      this.tasks.set(id, { resolve, reject, onUpdate });
      this.sendRaw({ ...fields, action, id });
    });
  }

  private connect(): void {
    this.setInfo({ status: this.info.everConnected ? "reconnecting" : "connecting", nextRetryAt: null });
    let socket: SocketLike;
    try {
      socket = this.opts.createSocket(this.opts.url);
    } catch {
      this.scheduleRetry();
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      if (this.socket !== socket) return;
      this.setInfo({ status: "open", attempt: 0, nextRetryAt: null, everConnected: true });
      this.armIdle();
      for (const topic of this.handlers.keys()) this.sendRaw({ action: "subscribe", topic });
    };
    socket.onmessage = (ev) => {
      if (this.socket !== socket) return;
      this.armIdle();
      this.handleMessage(ev.data);
    };
    socket.onclose = () => {
      if (this.socket !== socket) return;
      this.socket = null;
      detach(socket);
      this.lost();
    };
    socket.onerror = () => {
      /* onclose follows and handles it */
    };
  }

  private lost(): void {
    this.clearIdle();
    this.failTasks("connection lost");
    if (!this.started) {
      this.setInfo({ status: "closed", nextRetryAt: null });
      return;
    }
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    const attempt = this.info.attempt;
    const delay = backoffDelay(attempt, this.backoff, this.random);
    this.setInfo({
      status: this.info.everConnected ? "reconnecting" : "connecting",
      attempt: attempt + 1,
      nextRetryAt: this.timers.now() + delay,
    });
    // Keep "reconnecting" even before the first connection succeeded so the banner shows.
    if (this.info.status === "connecting") this.setInfo({ status: "reconnecting" });
    this.retryHandle = this.timers.setTimeout(() => {
      this.retryHandle = null;
      if (this.started) this.connect();
    }, delay);
  }

  private handleMessage(raw: unknown): void {
    if (typeof raw !== "string") return;
    let msg: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(raw);
      if (!parsed || typeof parsed !== "object") return;
      msg = parsed as Record<string, unknown>;
    } catch {
      return;
    }
    if (msg.type === "ping") {
      this.sendRaw({ action: "pong" });
      return;
    }
    if (msg.type === "pong") return;
    if (typeof msg.topic === "string") {
      const set = this.handlers.get(msg.topic);
      const kind: TopicKind = msg.kind === "snapshot" ? "snapshot" : "change";
      if (set) for (const h of [...set]) h(kind, msg.data);
      return;
    }
    if (typeof msg.id === "string" && (msg.type === "task" || "status" in msg)) {
      const task = this.tasks.get(msg.id);
      if (!task) return;
      const tm = msg as unknown as TaskMessage;
      task.onUpdate?.(tm);
      if (tm.status === "finished") {
        this.tasks.delete(msg.id);
        task.resolve(tm);
      } else if (tm.status === "exception" || tm.status === "interrupted") {
        this.tasks.delete(msg.id);
        task.reject(new TaskError(tm.message || `task ${tm.status}`, tm.status));
      }
    }
  }

  private sendRaw(msg: Record<string, unknown>): void {
    if (this.info.status !== "open" || !this.socket) return;
    try {
      this.socket.send(JSON.stringify(msg));
    } catch {
      /* the close event follows */
    }
  }

  private armIdle(): void {
    this.clearIdle();
    this.idleHandle = this.timers.setTimeout(() => {
      this.idleHandle = null;
      // Silent server: treat as lost (the socket may never report the close on a dead network).
      const s = this.socket;
      if (!s) return;
      this.socket = null;
      detach(s);
      try {
        s.close(4000, "no data from server");
      } catch {
        /* ignore */
      }
      this.lost();
    }, this.idleTimeoutMs);
  }

  private clearIdle(): void {
    if (this.idleHandle !== null) this.timers.clearTimeout(this.idleHandle);
    this.idleHandle = null;
  }

  private clearRetry(): void {
    if (this.retryHandle !== null) this.timers.clearTimeout(this.retryHandle);
    this.retryHandle = null;
  }

  private failTasks(reason: string): void {
    const pending = [...this.tasks.values()];
    this.tasks.clear();
    for (const t of pending) t.reject(new TaskError(reason, "interrupted"));
  }

  private setInfo(patch: Partial<ConnectionInfo>): void {
    this.info = { ...this.info, ...patch };
    this.opts.onStatus?.(this.info);
  }
}

function detach(s: SocketLike): void {
  s.onopen = null;
  s.onmessage = null;
  s.onclose = null;
  s.onerror = null;
}

/** The /ws URL on the page's own origin (http -> ws, https -> wss). */
export function liveUrl(location: { protocol: string; host: string }): string {
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`;
}

/** A SocketLike over the browser's WebSocket. */
export function openBrowserSocket(url: string): SocketLike {
  const ws = new WebSocket(url);
  const s: SocketLike = {
    send: (d) => ws.send(d),
    close: (code, reason) => ws.close(code, reason),
    onopen: null,
    onmessage: null,
    onclose: null,
    onerror: null,
  };
  ws.onopen = (e) => s.onopen?.(e);
  ws.onmessage = (e) => s.onmessage?.(e);
  ws.onclose = (e) => s.onclose?.(e);
  ws.onerror = (e) => s.onerror?.(e);
  return s;
}
