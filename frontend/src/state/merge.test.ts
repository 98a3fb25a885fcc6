import { describe, expect, it } from "vitest";
import { appendErrors, liveRunTime, stampReceived, markAllStale, mergeRunLog, mergeTags, mergeUnits, runLogLineMatches } from "./merge";
import { href, parseRoute } from "./route";
import type { RunLog, RunLogLine } from "../types";

const line = (id: string, start: number, extra: Partial<RunLogLine> = {}): RunLogLine => ({
  id,
  text: `cmd ${id}`,
  start,
  state: "running",
  ...extra,
});

describe("mergeTags", () => {
  it("applies changes and never rolls a tag back to an older tick", () => {
    let m = mergeTags(new Map(), [{ name: "FT01", value: 1, tick: 10, quality: "good" }]);
    m = mergeTags(m, [{ name: "FT01", value: 2, tick: 11, quality: "good" }]);
    m = mergeTags(m, [{ name: "FT01", value: 0, tick: 9, quality: "good" }]);
    expect(m.get("FT01")!.value).toBe(2);
    m = mergeTags(m, [{ name: "FT01", value: 2, tick: 11, quality: "stale" }]);
    expect(m.get("FT01")!.quality).toBe("stale");
    expect(markAllStale(m).get("FT01")!.quality).toBe("stale");
  });
});

describe("mergeRunLog", () => {
  it("updates lines by id, appends new ones in start order, and resets on a new run", () => {
    let log: RunLog = { run_id: "r1", lines: [line("a", 1), line("b", 2)] };
    log = mergeRunLog(log, { run_id: "r1", lines: [line("b", 2, { progress: 0.5 }), line("c", 3)] });
    expect(log.lines.map((l) => l.id)).toEqual(["a", "b", "c"]);
    expect(log.lines[1]!.progress).toBe(0.5);
    log = mergeRunLog(log, { run_id: "r2", lines: [line("x", 9)] });
    expect(log).toEqual({ run_id: "r2", lines: [line("x", 9)] });
  });
  it("filters by text, user and state", () => {
    const l = line("a", 1, { text: "PU01: 20 %", user: "alice", state: "completed" });
    expect(runLogLineMatches(l, "pu01", "all")).toBe(true);
    expect(runLogLineMatches(l, "alice", "")).toBe(true);
    expect(runLogLineMatches(l, "", "running")).toBe(false);
    expect(runLogLineMatches(l, "bob", "all")).toBe(false);
  });
});

describe("mergeUnits and errors", () => {
  it("merges a unit change by id and keeps names sorted", () => {
    const u = mergeUnits([{ id: "b", name: "B", online: true, state: "Stopped" }], { id: "a", name: "A", online: false, state: null });
    expect(u.map((x) => x.id)).toEqual(["a", "b"]);
    const v = mergeUnits(u, { id: "b", name: "B", online: false, state: "Stopped" });
    expect(v.find((x) => x.id === "b")!.online).toBe(false);
  });
  it("keeps the newest errors within the bound", () => {
    const e = (i: number) => ({ time: i, level: "info" as const, message: String(i) });
    expect(appendErrors([e(1), e(2)], [e(3)], 2).map((x) => x.time)).toEqual([2, 3]);
  });
});

describe("routes", () => {
  it("parses and builds hash routes", () => {
    expect(parseRoute("")).toEqual({ name: "dashboard" });
    expect(parseRoute("#/units/chrom%201")).toEqual({ name: "unit", id: "chrom 1" });
    expect(parseRoute("#/runs?q=load&unit=u1")).toEqual({ name: "runs", q: "load", unit: "u1" });
    expect(parseRoute("#/runs/r-1")).toEqual({ name: "run", id: "r-1" });
    expect(parseRoute("#/nope").name).toBe("notFound");
    expect(href({ name: "unit", id: "chrom 1" })).toBe("#/units/chrom%201");
    expect(href({ name: "runs", q: "x", unit: "" })).toBe("#/runs?q=x");
  });
});

describe("liveRunTime", () => {
  const base = { id: "u", name: "U", online: true, state: "Running", run_time: 10 };
  it("advances while a run is active and the unit online", () => {
    const [u] = stampReceived(base, 100);
    expect(liveRunTime(u!, 105)).toBe(15);
    expect(liveRunTime({ ...u!, state: "Paused" }, 105)).toBe(15);
  });
  it("stands still when stopped or offline, and is null without a run time", () => {
    const [u] = stampReceived(base, 100);
    expect(liveRunTime({ ...u!, state: "Stopped" }, 105)).toBe(10);
    expect(liveRunTime({ ...u!, online: false }, 105)).toBe(10);
    expect(liveRunTime({ ...u!, run_time: null }, 105)).toBeNull();
  });
});
