// Applying /ws snapshots and changes to what a view shows. Pure functions: the stores call them.

import type { ErrorLogEntry, RunLog, RunLogLine, TagState, UnitSummary } from "../types";

export function mergeTags(current: ReadonlyMap<string, TagState>, changed: readonly TagState[]): Map<string, TagState> {
  const next = new Map(current);
  for (const t of changed) {
    const prev = next.get(t.name);
    // A late update must not roll a tag back (ticks are scan times).
    if (prev && prev.tick != null && t.tick != null && t.tick < prev.tick && t.quality === prev.quality) continue;
    next.set(t.name, { ...prev, ...t });
  }
  return next;
}

export function markAllStale(current: ReadonlyMap<string, TagState>): Map<string, TagState> {
  const next = new Map<string, TagState>();
  for (const [k, t] of current) next.set(k, { ...t, quality: "stale" });
  return next;
}

/** A snapshot replaces the log. */
export function runLogSnapshot(log: RunLog): RunLog {
  return { run_id: log.run_id, lines: sortLines(log.lines ?? []) };
}

/** A change with another run id starts a new log; otherwise lines are replaced by id or appended. */
export function mergeRunLog(current: RunLog, change: RunLog): RunLog {
  if (change.run_id !== current.run_id) return { run_id: change.run_id, lines: sortLines(change.lines) };
  const byId = new Map(current.lines.map((l) => [l.id, l] as const));
  for (const l of change.lines) byId.set(l.id, { ...byId.get(l.id), ...l });
  return { run_id: current.run_id, lines: sortLines([...byId.values()]) };
}

function sortLines(lines: readonly RunLogLine[]): RunLogLine[] {
  return [...lines].sort((a, b) => a.start - b.start);
}

export function mergeUnits(current: readonly UnitSummary[], change: UnitSummary | UnitSummary[]): UnitSummary[] {
  const changes = Array.isArray(change) ? change : [change];
  const next = current.slice();
  for (const u of changes) {
    const i = next.findIndex((x) => x.id === u.id);
    if (i >= 0) next[i] = { ...next[i]!, ...u };
    else next.push(u);
  }
  return next.sort((a, b) => a.name.localeCompare(b.name));
}

/** Error log entries, newest last, bounded. */
export function appendErrors(current: readonly ErrorLogEntry[], added: readonly ErrorLogEntry[], max = 500): ErrorLogEntry[] {
  const next = current.concat(added);
  return next.length > max ? next.slice(next.length - max) : next;
}

/** Whether a line matches the run log's filter (text and state). */
export function runLogLineMatches(line: RunLogLine, text: string, state: string): boolean {
  if (state && state !== "all" && line.state !== state) return false;
  if (!text) return true;
  const needle = text.toLowerCase();
  return line.text.toLowerCase().includes(needle) || (line.user ?? "method").toLowerCase().includes(needle);
}

const ACTIVE = new Set(["Running", "Paused", "Holding", "Restarting"]);

/**
 * Run time to show now: the summary's run_time advanced by the time since it arrived, while a run
 * is active and the unit online (Run Time counts through Pause and Hold). The server sends a new
 * summary on state changes, not every second.
 */
export function liveRunTime(u: UnitSummary, nowEpoch: number): number | null {
  if (u.run_time == null) return null;
  if (!u.online || !u.state || !ACTIVE.has(u.state) || u.received_at == null) return u.run_time;
  return u.run_time + Math.max(0, nowEpoch - u.received_at);
}

/** Stamp summaries with their arrival time. */
export function stampReceived<T extends UnitSummary>(units: T | T[], nowEpoch: number): T[] {
  return (Array.isArray(units) ? units : [units]).map((u) => ({ ...u, received_at: nowEpoch }));
}
