// Managed alarms as the pages show them (docs/alarms.md): the /ws `alarms` topic merged into a
// list, the banner's counts, labels and the run plot's marks. Pure functions, tested in alarms.test.ts.

export type AlarmPriority = "low" | "medium" | "high" | "urgent";
export type AlarmStateName =
  | "normal"
  | "unack_active"
  | "ack_active"
  | "rtn_unack"
  | "shelved"
  | "suppressed"
  | "out_of_service";

export interface AlarmView {
  unit_id: string;
  name: string;
  state: AlarmStateName;
  active: boolean;
  priority: AlarmPriority;
  message: string;
  kind?: string;
  condition?: string;
  tag?: string | null;
  time?: number | null;
  unack_since?: number | null;
  user?: string | null;
  comment?: string | null;
  value?: unknown;
  shelved_until?: number | null;
  max_shelve_minutes?: number;
  escalation_minutes?: number | null;
  declared?: boolean;
}

export interface JournalEntry {
  id: number;
  unit_id: string;
  run_id: string | null;
  name: string;
  state: AlarmStateName;
  previous: AlarmStateName;
  active: boolean;
  time: number;
  cause: string;
  user: string | null;
  comment: string | null;
  value: unknown;
  shelved_until: number | null;
  priority: AlarmPriority;
  message: string;
}

export interface JournalPage {
  entries: JournalEntry[];
  next: number | null;
}

/** Highest first: the order of the banner and of the active list. */
export const PRIORITIES: AlarmPriority[] = ["urgent", "high", "medium", "low"];

export const STATE_LABELS: Record<AlarmStateName, string> = {
  normal: "Normal",
  unack_active: "Active, unacknowledged",
  ack_active: "Active, acknowledged",
  rtn_unack: "Returned, unacknowledged",
  shelved: "Shelved",
  suppressed: "Suppressed by design",
  out_of_service: "Out of service",
};

export function isUnacknowledged(a: { state: string }): boolean {
  return a.state === "unack_active" || a.state === "rtn_unack";
}

export function alarmKey(a: { unit_id: string; name: string }): string {
  return `${a.unit_id}\u0000${a.name}`;
}

/** The active list after one change of the `alarms` topic: back to normal (or no longer declared) leaves it. */
export function mergeAlarm(list: AlarmView[], change: AlarmView): AlarmView[] {
  const key = alarmKey(change);
  const rest = list.filter((a) => alarmKey(a) !== key);
  if (change.state === "normal" || change.declared === false) return rest;
  return sortAlarms([...rest, change]);
}

export function sortAlarms(list: AlarmView[]): AlarmView[] {
  const rank = (p: AlarmPriority) => PRIORITIES.indexOf(p);
  return [...list].sort(
    (a, b) =>
      Number(isUnacknowledged(b)) - Number(isUnacknowledged(a)) ||
      rank(a.priority) - rank(b.priority) ||
      (b.time ?? 0) - (a.time ?? 0),
  );
}

/** Unacknowledged alarms per priority, highest first, only the priorities that have some. */
export function unackCounts(list: AlarmView[]): { priority: AlarmPriority; count: number }[] {
  return PRIORITIES.map((priority) => ({
    priority,
    count: list.filter((a) => a.priority === priority && isUnacknowledged(a)).length,
  })).filter((c) => c.count > 0);
}

/** The raises of a run's alarms, as plot marks ("⚠ PT01 high"); `start`: the run's start. */
export function alarmMarks(entries: JournalEntry[], start: number): { t: number; run_time: number; tag: string; text: string }[] {
  return entries
    .filter((e) => e.state === "unack_active" && e.previous !== "unack_active")
    .map((e) => ({ t: e.time, run_time: e.time - start, tag: "Alarm", text: `⚠ ${e.name}` }))
    .sort((a, b) => a.t - b.t);
}

export function formatAlarmValue(value: unknown): string {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toPrecision(4);
  return String(value);
}
