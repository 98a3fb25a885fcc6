// What the plot draws, as pure data: every series held to "now" (or to the run's end), all
// subplots on one x axis converted from time (Run Time, a volume or CV tag, or the clock).
//
// Stored samples mean "the value is this from now until it changes" (values are stored when they
// change), so a series is a step function: the last value lasts until the next sample, and the
// newest one until the time the plot is drawn to.

import { CLOCK_AXIS, alignSeries, type TimeSeries } from "./plotdata";

export const RUN_TIME = "Run Time";

/** Where the plot reads samples from (a SeriesBuffer). */
export interface SampleSource {
  get(tag: string): TimeSeries | undefined;
  /** until when the series are drawn (epoch s), null when nothing is known yet */
  until(): number | null;
}

/** The series with its last value repeated at `until` (nothing to add when it already reaches it). */
export function holdTo(s: TimeSeries | undefined, until: number | null): TimeSeries | undefined {
  const n = s?.t.length ?? 0;
  if (!s || n === 0 || until === null || !(until > s.t[n - 1]!)) return s;
  return { t: [...s.t, until], v: [...s.v, s.v[n - 1] ?? null] };
}

/** How fast an x-axis tag goes on between its samples: Run Time is a clock (1 s/s), a volume stays. */
export function xRate(axis: string): number {
  return axis === RUN_TIME ? 1 : 0;
}

/** The x tag's samples; null for the clock axis, or while the tag has none (then the clock is used). */
export function xSeriesOf(src: SampleSource, axis: string): TimeSeries | null {
  if (axis === CLOCK_AXIS) return null;
  const s = src.get(axis);
  return s && s.t.length > 0 ? s : null;
}

export interface Frame {
  /** the axis asked for; `clock` says whether the clock stands in for it */
  xAxis: string;
  clock: boolean;
  /** x values ascending, and the time (epoch s) of each */
  x: number[];
  t: number[];
  /** one column per tag, aligned with x; null where that tag has no sample (the line steps over) */
  ys: Map<string, (number | null)[]>;
  until: number | null;
}

/** Every tag of every subplot on one shared x, so the subplots' x ranges cannot disagree. */
export function plotFrame(src: SampleSource, tags: readonly string[], axis: string): Frame {
  const until = src.until();
  const xs = xSeriesOf(src, axis);
  const aligned = alignSeries(
    tags.map((tag) => holdTo(src.get(tag), until)),
    xs,
    xRate(axis),
  );
  const ys = new Map<string, (number | null)[]>();
  tags.forEach((tag, i) => ys.set(tag, aligned.ys[i]!));
  return { xAxis: axis, clock: xs === null, x: aligned.x, t: aligned.t, ys, until };
}

/** The x range that shows all of a frame (one unit wide around a single point). */
export function fullRange(frame: Frame): { min: number; max: number } | null {
  const n = frame.x.length;
  if (n === 0) return null;
  const min = frame.x[0]!;
  const max = frame.x[n - 1]!;
  return max > min ? { min, max } : { min, max: min + 1 };
}

/** The sample in force at `idx` of a column with gaps: the last value at or before it. */
export function heldIndex(col: ArrayLike<number | null | undefined>, idx: number | null): number | null {
  if (idx === null) return null;
  for (let i = Math.min(idx, col.length - 1); i >= 0; i--) if (col[i] != null) return i;
  return null;
}

/** The newest value of a column (the held one at "now"). */
export function latestValue(col: ArrayLike<number | null | undefined>): number | null {
  const i = heldIndex(col, col.length - 1);
  return i === null ? null : (col[i] as number);
}
