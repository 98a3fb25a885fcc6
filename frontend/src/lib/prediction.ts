// run_model's prediction (POST /api/units/{id}/simulate, /ws run_model) and how it is drawn:
// marks on a timeline and each plotted tag's predicted trace as a dashed line.

export interface PredictedEvent {
  run_time: number;
  text: string;
}

export interface Prediction {
  duration: number;
  end_state: string;
  marks: PredictedEvent[];
  watches: PredictedEvent[];
  alarms: { run_time: number; name: string; priority: string }[];
  tags: Record<string, { min: number; max: number; last: number }>;
  trace: Record<string, { run_time: number[]; v: (number | string | null)[] }>;
  findings: unknown[];
}

/** Where an event sits on a timeline of the prediction's duration, in percent (0..100). */
export function timelinePercent(runTime: number, duration: number): number {
  if (!(duration > 0)) return 0;
  return Math.min(100, Math.max(0, (runTime / duration) * 100));
}

export interface Box {
  width: number;
  height: number;
  yMin: number;
  yMax: number;
  duration: number;
}

/** The SVG path of one tag's predicted trace in a box (x: run time 0..duration, y: yMin..yMax);
 *  text values and gaps break the line. */
export function tracePath(series: { run_time: number[]; v: (number | string | null)[] }, box: Box): string {
  const span = box.yMax - box.yMin || 1;
  const xScale = box.duration > 0 ? box.width / box.duration : 0;
  let path = "";
  let pen = false;
  for (let i = 0; i < series.run_time.length; i++) {
    const v = series.v[i];
    if (typeof v !== "number" || !Number.isFinite(v)) {
      pen = false;
      continue;
    }
    const x = series.run_time[i]! * xScale;
    const y = box.height - ((Math.min(box.yMax, Math.max(box.yMin, v)) - box.yMin) / span) * box.height;
    path += `${pen ? "L" : "M"}${x.toFixed(1)} ${y.toFixed(1)} `;
    pen = true;
  }
  return path.trim();
}

/** The y range of an axis: its declared limits, else the predicted extremes of its tags. */
export function axisRange(
  tags: string[],
  stats: Prediction["tags"],
  yMin?: number | null,
  yMax?: number | null,
): [number, number] {
  const mins = tags.map((t) => stats[t]?.min).filter((v): v is number => typeof v === "number");
  const maxs = tags.map((t) => stats[t]?.max).filter((v): v is number => typeof v === "number");
  const lo = yMin ?? (mins.length ? Math.min(...mins) : 0);
  let hi = yMax ?? (maxs.length ? Math.max(...maxs) : 1);
  if (hi <= lo) hi = lo + 1;
  return [lo, hi];
}
