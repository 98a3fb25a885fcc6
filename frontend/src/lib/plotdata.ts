// Shaping tag samples for uPlot: a bounded live buffer, min/max decimation, alignment of series
// sampled at different times onto one x axis (time or another tag such as a volume), and spans
// of categorical tags for coloured background regions.

import type { PlotData, Scalar } from "../types";

export interface TimeSeries {
  t: number[];
  v: (number | string | null)[];
}

/** The x axis that is the wall clock rather than a tag. */
export const CLOCK_AXIS = "Time of day";

/**
 * Keep at most `points` samples of a numeric series: the time range is cut into points/2 buckets
 * and each keeps its minimum and maximum (in time order), so no peak disappears. Nulls are kept
 * as gap markers only when a bucket holds nothing else.
 */
export function decimateMinMax(s: TimeSeries, points: number): TimeSeries {
  const n = s.t.length;
  if (n <= points || points < 2) return { t: s.t.slice(), v: s.v.slice() };
  const buckets = Math.max(1, Math.floor(points / 2));
  const t0 = s.t[0]!;
  const span = s.t[n - 1]! - t0 || 1;
  const out: TimeSeries = { t: [], v: [] };
  let i = 0;
  for (let b = 0; b < buckets; b++) {
    const end = b === buckets - 1 ? Infinity : t0 + (span * (b + 1)) / buckets;
    let minI = -1;
    let maxI = -1;
    let firstI = -1;
    for (; i < n && s.t[i]! < end; i++) {
      if (firstI < 0) firstI = i;
      const v = s.v[i];
      if (typeof v !== "number") continue;
      if (minI < 0 || v < (s.v[minI] as number)) minI = i;
      if (maxI < 0 || v > (s.v[maxI] as number)) maxI = i;
    }
    if (firstI < 0) continue;
    if (minI < 0) {
      out.t.push(s.t[firstI]!);
      out.v.push(s.v[firstI] ?? null);
      continue;
    }
    const [a, z] = minI <= maxI ? [minI, maxI] : [maxI, minI];
    out.t.push(s.t[a]!);
    out.v.push(s.v[a]!);
    if (z !== a) {
      out.t.push(s.t[z]!);
      out.v.push(s.v[z]!);
    }
  }
  return out;
}

/** Times closer than this (s) are one sample seen twice (live, and read back from storage). */
const SAME_SAMPLE = 1e-3;

/** Samples per tag (stored history, then the live ones as they are stored), bounded: when a tag exceeds `maxPoints`, its older half is decimated. */
export class SeriesBuffer {
  private readonly data = new Map<string, TimeSeries>();
  private readonly annotations: { t: number; tag: string; text: string }[] = [];
  /** when the run shown ended (epoch s); null while it goes on: then "now" is the latest sample */
  private endTime: number | null = null;
  private now = -Infinity;

  constructor(
    private readonly maxPoints = 4000,
    private annotationTags: ReadonlySet<string> = new Set(["Mark"]),
  ) {}

  setAnnotationTags(tags: Iterable<string>): void {
    this.annotationTags = new Set(tags);
  }

  clear(): void {
    this.data.clear();
    this.annotations.length = 0;
    this.endTime = null;
    this.now = -Infinity;
  }

  /** The run shown has ended at `t` (its series are held to then), or goes on (null). */
  setEnd(t: number | null): void {
    this.endTime = t;
  }

  /** The newest sample time of any tag (-Infinity when empty). */
  lastTime(): number {
    let t = -Infinity;
    for (const s of this.data.values()) {
      const last = s.t[s.t.length - 1];
      if (last !== undefined && last > t) t = last;
    }
    return t;
  }

  /**
   * The newest scan heard of (a live value's time) while the run goes on: the series are held to
   * it, though the buffer holds only stored samples (taken once per data-log interval).
   */
  setNow(t: number): void {
    if (t > this.now) this.now = t;
  }

  /**
   * Until when the series are drawn: the run's end once it has stopped, else "now": the newest
   * scan heard of, or the newest sample when that is newer.
   */
  until(): number | null {
    const last = this.lastTime();
    if (this.endTime !== null) return Math.max(this.endTime, last);
    // The scan of the newest sample, heard live (its exact time) while the history holds the
    // stored copy (kept to about a microsecond): the same moment, not a later one to hold to.
    const until = this.now > last + SAME_SAMPLE ? this.now : last;
    return Number.isFinite(until) ? until : null;
  }

  /** Replace the buffer with a server answer (history of the run so far). */
  seed(plot: PlotData): void {
    // Live samples newer than the answer arrived while it was on its way: keep them.
    const live = new Map(this.data);
    const liveMarks = this.annotations.slice();
    const end = this.endTime;
    const now = this.now;
    this.clear();
    this.endTime = end;
    this.now = now;
    let seededUntil = -Infinity;
    for (const s of plot.series) {
      const lastT = s.t[s.t.length - 1];
      if (lastT !== undefined && lastT > seededUntil) seededUntil = lastT;
    }
    for (const s of plot.series) {
      this.data.set(s.tag, { t: s.t.slice(), v: s.v.slice() });
      // The server's run_time column doubles as samples of the "Run Time" tag.
      if (!this.data.has("Run Time") && s.run_time && s.run_time.length === s.t.length && s.t.length > 0) {
        this.data.set("Run Time", { t: s.t.slice(), v: s.run_time.slice() });
      }
    }
    for (const a of plot.annotations) this.annotations.push({ t: a.t, tag: a.tag ?? "Mark", text: a.text });
    for (const [tag, s] of live) {
      const target = this.data.get(tag) ?? { t: [], v: [] };
      const from = target.t.length ? target.t[target.t.length - 1]! : seededUntil;
      for (let i = 0; i < s.t.length; i++) {
        // Storage keeps times to about a microsecond: a live copy of a stored sample is not newer.
        if (s.t[i]! > from + SAME_SAMPLE) {
          target.t.push(s.t[i]!);
          target.v.push(s.v[i] ?? null);
        }
      }
      if (target.t.length) this.data.set(tag, target);
    }
    for (const m of liveMarks) if (m.t > seededUntil + SAME_SAMPLE) this.annotations.push(m);
  }

  append(tag: string, t: number, value: Scalar): void {
    let s = this.data.get(tag);
    if (!s) {
      s = { t: [], v: [] };
      this.data.set(tag, s);
    }
    const v = typeof value === "boolean" ? (value ? 1 : 0) : value;
    // Usually the newest; a sample replayed after an outage is stored too, so it goes in its place.
    // A live copy of a sample the history already holds (its time kept to about a microsecond)
    // is the same point, not a new one.
    let i = s.t.length;
    while (i > 0 && s.t[i - 1]! > t + SAME_SAMPLE) i--;
    if (i > 0 && Math.abs(s.t[i - 1]! - t) <= SAME_SAMPLE) s.v[i - 1] = v;
    else {
      s.t.splice(i, 0, t);
      s.v.splice(i, 0, v);
    }
    if (this.annotationTags.has(tag) && typeof v === "string" && v !== "") {
      this.annotations.push({ t, tag, text: v });
    }
    if (s.t.length > this.maxPoints) this.compact(tag, s);
  }

  private compact(tag: string, s: TimeSeries): void {
    const half = Math.floor(s.t.length / 2);
    const older = { t: s.t.slice(0, half), v: s.v.slice(0, half) };
    const isNumeric = older.v.some((x) => typeof x === "number");
    const kept = isNumeric ? decimateMinMax(older, Math.floor(this.maxPoints / 4)) : keepChanges(older);
    this.data.set(tag, { t: kept.t.concat(s.t.slice(half)), v: kept.v.concat(s.v.slice(half)) });
  }

  get(tag: string): TimeSeries | undefined {
    return this.data.get(tag);
  }

  tags(): string[] {
    return [...this.data.keys()];
  }

  marks(): readonly { t: number; tag: string; text: string }[] {
    return this.annotations;
  }
}

/** Categorical series: keep only the samples where the value changes. */
export function keepChanges(s: TimeSeries): TimeSeries {
  const out: TimeSeries = { t: [], v: [] };
  for (let i = 0; i < s.t.length; i++) {
    if (i === 0 || s.v[i] !== s.v[i - 1]) {
      out.t.push(s.t[i]!);
      out.v.push(s.v[i] ?? null);
    }
  }
  return out;
}

/**
 * The value of a monotonic-ish x tag at each time: linear interpolation between its samples,
 * null before the first one; after the last sample its last value, advanced by `rateAfter` per
 * second for a tag that is a clock (Run Time goes on between samples; a volume stays).
 */
export function valuesAt(x: TimeSeries, times: readonly number[], rateAfter = 0): (number | null)[] {
  const out: (number | null)[] = [];
  let j = 0;
  for (const t of times) {
    while (j + 1 < x.t.length && x.t[j + 1]! <= t) j++;
    if (x.t.length === 0 || t < x.t[0]!) {
      out.push(null);
      continue;
    }
    const v0 = x.v[j];
    if (typeof v0 !== "number") {
      out.push(null);
      continue;
    }
    const t1 = x.t[j + 1];
    const v1 = x.v[j + 1];
    if (t1 !== undefined && typeof v1 === "number" && t1 > x.t[j]!) {
      out.push(v0 + ((v1 - v0) * (t - x.t[j]!)) / (t1 - x.t[j]!));
    } else if (t1 === undefined && rateAfter !== 0) out.push(v0 + rateAfter * (t - x.t[j]!));
    else out.push(v0);
  }
  return out;
}

export interface Aligned {
  /** x values, ascending */
  x: number[];
  /** one array per requested tag, same length as x, null where that tag has no sample */
  ys: (number | null)[][];
  /** wall-clock time of each x (for tooltips and mapping regions) */
  t: number[];
}

/**
 * Put numeric series onto one x axis. `xSeries` maps time to x (null: x is the clock itself).
 * Samples whose x is unknown are dropped; the result is sorted by x.
 */
export function alignSeries(
  series: readonly (TimeSeries | undefined)[],
  xSeries: TimeSeries | null,
  rateAfter = 0,
): Aligned {
  const times = new Set<number>();
  for (const s of series) if (s) for (const t of s.t) times.add(t);
  const sortedT = [...times].sort((a, b) => a - b);
  const xs: (number | null)[] = xSeries ? valuesAt(xSeries, sortedT, rateAfter) : sortedT;
  const index = new Map<number, number>();
  sortedT.forEach((t, i) => index.set(t, i));
  const cols: (number | null)[][] = series.map(() => new Array<number | null>(sortedT.length).fill(null));
  series.forEach((s, k) => {
    if (!s) return;
    const col = cols[k]!;
    for (let i = 0; i < s.t.length; i++) {
      const v = s.v[i];
      col[index.get(s.t[i]!)!] = typeof v === "number" && Number.isFinite(v) ? v : null;
    }
  });
  const order = sortedT.map((_, i) => i).filter((i) => xs[i] !== null);
  if (xSeries) order.sort((a, b) => (xs[a] as number) - (xs[b] as number) || a - b);
  return {
    x: order.map((i) => xs[i] as number),
    t: order.map((i) => sortedT[i]!),
    ys: cols.map((col) => order.map((i) => col[i] ?? null)),
  };
}

export interface Span {
  from: number;
  to: number;
  value: string;
}

/** Runs of equal values of a categorical tag, in time, ending at `until` for the last one. */
export function categoricalSpans(s: TimeSeries | undefined, until: number): Span[] {
  if (!s) return [];
  const out: Span[] = [];
  for (let i = 0; i < s.t.length; i++) {
    const v = s.v[i];
    const value = v === null || v === undefined ? "" : String(v);
    const last = out[out.length - 1];
    if (last && last.value === value) continue;
    if (last) last.to = s.t[i]!;
    out.push({ from: s.t[i]!, to: until, value });
  }
  return out.filter((sp) => sp.to > sp.from && sp.value !== "");
}

/** Map a time to x through the x tag (or identity for the clock axis). */
export function timeToX(xSeries: TimeSeries | null, t: number, rateAfter = 0): number | null {
  if (!xSeries) return t;
  return valuesAt(xSeries, [t], rateAfter)[0] ?? null;
}

/** Whether a series holds text (categorical) rather than numbers. */
export function isCategorical(s: TimeSeries | undefined): boolean {
  if (!s) return false;
  return s.v.some((v) => typeof v === "string");
}
