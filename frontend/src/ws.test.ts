import { describe, expect, it } from "vitest";
import { LiveClient, TaskError, backoffDelay, liveUrl, type ConnectionInfo, type SocketLike, type Timers } from "./ws";

class FakeSocket implements SocketLike {
  sent: Record<string, unknown>[] = [];
  closed = false;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: unknown) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  send(data: string): void {
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
  }
  close(): void {
    this.closed = true;
  }
  open(): void {
    this.onopen?.({});
  }
  receive(msg: unknown): void {
    this.onmessage?.({ data: JSON.stringify(msg) });
  }
  drop(): void {
    this.onclose?.({});
  }
}

class FakeTimers implements Timers {
  time = 0;
  private seq = 0;
  private pending = new Map<number, { at: number; fn: () => void }>();
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.pending.set(id, { at: this.time + ms, fn });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.pending.delete(h as number);
  }
  now(): number {
    return this.time;
  }
  advance(ms: number): void {
    const target = this.time + ms;
    for (;;) {
      const due = [...this.pending.entries()].filter(([, p]) => p.at <= target).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.pending.delete(due[0]);
      this.time = due[1].at;
      due[1].fn();
    }
    this.time = target;
  }
}

function setup() {
  const sockets: FakeSocket[] = [];
  const timers = new FakeTimers();
  const statuses: ConnectionInfo[] = [];
  const client = new LiveClient({
    url: "ws://x/ws",
    createSocket: () => {
      const s = new FakeSocket();
      sockets.push(s);
      return s;
    },
    timers,
    random: () => 1,
    backoff: { initialMs: 100, maxMs: 1000, factor: 2 },
    idleTimeoutMs: 30_000,
    onStatus: (i) => statuses.push(i),
  });
  return { client, sockets, timers, statuses, last: () => sockets[sockets.length - 1]! };
}

describe("backoffDelay", () => {
  it("grows exponentially, is capped and jittered between half and full", () => {
    const o = { initialMs: 500, maxMs: 15000, factor: 2 };
    expect(backoffDelay(0, o, () => 1)).toBe(500);
    expect(backoffDelay(3, o, () => 1)).toBe(4000);
    expect(backoffDelay(10, o, () => 1)).toBe(15000);
    expect(backoffDelay(3, o, () => 0)).toBe(2000);
  });
});

describe("LiveClient", () => {
  it("subscribes after open and delivers snapshot then changes to the topic's handlers", () => {
    const { client, last } = setup();
    const got: [string, unknown][] = [];
    client.subscribe("units", (k, d) => got.push([k, d]));
    client.start();
    last().open();
    expect(last().sent).toEqual([{ action: "subscribe", topic: "units" }]);
    last().receive({ topic: "units", kind: "snapshot", data: [1] });
    last().receive({ topic: "units", kind: "change", data: 2 });
    last().receive({ topic: "other", kind: "change", data: 3 });
    expect(got).toEqual([
      ["snapshot", [1]],
      ["change", 2],
    ]);
  });

  it("unsubscribes on the server only when the last handler leaves", () => {
    const { client, last } = setup();
    client.start();
    last().open();
    const off1 = client.subscribe("unit/a/tags", () => {});
    const off2 = client.subscribe("unit/a/tags", () => {});
    off1();
    expect(last().sent.filter((m) => m.action === "unsubscribe")).toEqual([]);
    off2();
    expect(last().sent.at(-1)).toEqual({ action: "unsubscribe", topic: "unit/a/tags" });
    expect(client.topics).toEqual([]);
  });

  it("reconnects with growing backoff after a lost connection and resubscribes every topic", () => {
    const { client, sockets, timers, statuses, last } = setup();
    client.subscribe("units", () => {});
    client.subscribe("unit/a/tags", () => {});
    client.start();
    last().open();
    last().drop();
    expect(client.connection.status).toBe("reconnecting");
    expect(client.connection.attempt).toBe(1);
    timers.advance(99);
    expect(sockets.length).toBe(1);
    timers.advance(1);
    expect(sockets.length).toBe(2);
    last().drop(); // failed attempt: next delay doubles
    timers.advance(199);
    expect(sockets.length).toBe(2);
    timers.advance(1);
    expect(sockets.length).toBe(3);
    last().open();
    expect(client.connection).toMatchObject({ status: "open", attempt: 0 });
    expect(last().sent).toEqual([
      { action: "subscribe", topic: "units" },
      { action: "subscribe", topic: "unit/a/tags" },
    ]);
    expect(statuses.map((s) => s.status)).toContain("reconnecting");
  });

  it("does not resubscribe a topic that was dropped while offline", () => {
    const { client, timers, last } = setup();
    const off = client.subscribe("unit/a/runlog", () => {});
    client.subscribe("units", () => {});
    client.start();
    last().open();
    last().drop();
    off();
    timers.advance(1000);
    last().open();
    expect(last().sent).toEqual([{ action: "subscribe", topic: "units" }]);
  });

  it("answers server pings and treats a silent server as lost", () => {
    const { client, sockets, timers, last } = setup();
    client.start();
    last().open();
    last().receive({ type: "ping", time: 1 });
    expect(last().sent).toEqual([{ action: "pong" }]);
    timers.advance(29_999);
    expect(client.connection.status).toBe("open");
    timers.advance(1);
    expect(sockets[0]!.closed).toBe(true);
    expect(client.connection.status).toBe("reconnecting");
  });

  it("resolves a request on finished and rejects on exception", async () => {
    const { client, last } = setup();
    client.start();
    last().open();
    const updates: string[] = [];
    const p = client.request("run", { unit: "u1" }, (m) => updates.push(m.status));
    const sent = last().sent.at(-1)!;
    expect(sent).toMatchObject({ action: "run", unit: "u1" });
    last().receive({ id: sent.id, type: "task", status: "working" });
    last().receive({ id: sent.id, type: "task", status: "finished", message: "ok" });
    await expect(p).resolves.toMatchObject({ status: "finished", message: "ok" });
    expect(updates).toEqual(["working", "finished"]);
    const q = client.request("stop", { unit: "u1" });
    last().receive({ id: last().sent.at(-1)!.id, type: "task", status: "exception", message: "unit offline" });
    await expect(q).rejects.toThrow("unit offline");
  });

  it("fails pending requests when the connection drops, and refuses requests while offline", async () => {
    const { client, last } = setup();
    client.start();
    last().open();
    const p = client.request("status", { unit: "u1" });
    last().drop();
    await expect(p).rejects.toBeInstanceOf(TaskError);
    await expect(client.request("status", { unit: "u1" })).rejects.toThrow("not connected");
  });

  it("stops for good: no reconnect after stop()", () => {
    const { client, sockets, timers, last } = setup();
    client.start();
    last().open();
    client.stop();
    timers.advance(60_000);
    expect(sockets.length).toBe(1);
    expect(client.connection.status).toBe("closed");
  });

  it("retryNow skips the wait", () => {
    const { client, sockets, last } = setup();
    client.start();
    last().open();
    last().drop();
    client.retryNow();
    expect(sockets.length).toBe(2);
  });

  it("builds the URL from the page origin", () => {
    expect(liveUrl({ protocol: "http:", host: "h:9800" })).toBe("ws://h:9800/ws");
    expect(liveUrl({ protocol: "https:", host: "h" })).toBe("wss://h/ws");
  });
});
