// Formatting for people: durations, values with units, times, ages.

import type { Scalar } from "../types";

/** 75.4 -> "1:15", 3725 -> "1:02:05", null -> "–". Seconds are truncated. */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds == null || !Number.isFinite(seconds)) return "–";
  const neg = seconds < 0;
  let s = Math.floor(Math.abs(seconds));
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  const mm = h > 0 ? String(m).padStart(2, "0") : String(m);
  const body = h > 0 ? `${h}:${mm}:${String(s).padStart(2, "0")}` : `${mm}:${String(s).padStart(2, "0")}`;
  return neg ? `-${body}` : body;
}

/** A number shown with precision that suits its size: 1234.5 -> "1235", 12.345 -> "12.35", 0.01234 -> "0.0123". */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return "0";
  const a = Math.abs(v);
  let text: string;
  if (a >= 1000) text = v.toFixed(0);
  else if (a >= 100) text = v.toFixed(1);
  else if (a >= 1) text = v.toFixed(2);
  else if (a >= 0.001) text = v.toPrecision(3);
  else text = v.toExponential(2);
  return text === "-0" ? "0" : text;
}

export function formatValue(value: Scalar | undefined, unit?: string | null): string {
  if (value === null || value === undefined || value === "") return "–";
  let text: string;
  if (typeof value === "number") text = formatNumber(value);
  else if (typeof value === "boolean") text = value ? "true" : "false";
  else text = value;
  return unit && typeof value === "number" ? `${text} ${unit}` : text;
}

function pad(n: number): string {
  return String(n).padStart(2, "0");
}

/** Local wall-clock time of an epoch (s): "14:03:07". */
export function formatClock(epoch: number | null | undefined): string {
  if (epoch == null || !Number.isFinite(epoch)) return "–";
  const d = new Date(epoch * 1000);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Local date and time of an epoch (s): "2026-11-21 14:03". */
export function formatDateTime(epoch: number | null | undefined): string {
  if (epoch == null || !Number.isFinite(epoch)) return "–";
  const d = new Date(epoch * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** "just now", "42 s ago", "5 min ago", "3 h ago", "2 d ago". */
export function formatAge(epoch: number | null | undefined, nowEpoch: number): string {
  if (epoch == null || !Number.isFinite(epoch)) return "never";
  const s = Math.max(0, nowEpoch - epoch);
  if (s < 2) return "just now";
  if (s < 60) return `${Math.floor(s)} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** Progress 0..1 -> "42 %"; null -> "". */
export function formatProgress(p: number | null | undefined): string {
  if (p == null || !Number.isFinite(p)) return "";
  return `${Math.round(Math.min(1, Math.max(0, p)) * 100)} %`;
}
