// A prediction (run_model's result) overlaid on the plot as dashed lines: the editor's Simulate
// result on the unit's plot before Start, the prediction made at Start on a run's plot. Pure data
// here; lib/chart.ts draws it as extra series of each subplot.

import type uPlot from "uplot";
import type { Prediction } from "./prediction";
import { RUN_TIME } from "./plotframe";

export interface Overlay {
  prediction: Prediction;
  /** epoch s where run time 0 sits on the clock axis: the run's start; null before Start ("now") */
  start: number | null;
}

/** One predicted trace on the plot's x. */
export interface OverlayTrace {
  tag: string;
  x: number[];
  v: (number | null)[];
}

/** The predicted traces of `tags`, on the plot's x: run time as is on the Run Time axis, from the
 *  start on the clock (also when the clock stands in for Run Time); none on other axes (a volume
 *  or CV tag), which the prediction does not know. */
export function overlayTraces(overlay: Overlay | null, tags: readonly string[], axis: string, clock: boolean, now: number): OverlayTrace[] {
  if (!overlay) return [];
  if (!clock && axis !== RUN_TIME) return [];
  const offset = clock ? (overlay.start ?? now) : 0;
  const out: OverlayTrace[] = [];
  for (const tag of tags) {
    const series = overlay.prediction.trace[tag];
    if (!series) continue;
    const x: number[] = [];
    const v: (number | null)[] = [];
    series.run_time.forEach((t, i) => {
      const value = series.v[i];
      x.push(t + offset);
      v.push(typeof value === "number" && Number.isFinite(value) ? value : null);
    });
    out.push({ tag, x, v });
  }
  return out;
}

export interface Merged {
  x: number[];
  /** the plot's own columns, null where only a predicted point is */
  actual: (number | null)[][];
  /** one column per trace, null where only an actual sample is */
  predicted: (number | null)[][];
}

/** The actual columns and the predicted traces on one ascending x, as uPlot wants its data. */
export function mergeOverlay(x: readonly number[], actual: readonly (readonly (number | null)[])[], traces: readonly OverlayTrace[]): Merged {
  if (traces.length === 0) return { x: [...x], actual: actual.map((c) => [...c]), predicted: [] };
  const byX = traces.map((tr) => new Map(tr.x.map((xi, i) => [xi, tr.v[i] ?? null])));
  const ox = [...new Set(traces.flatMap((tr) => tr.x))].sort((a, b) => a - b);
  const out: Merged = { x: [], actual: actual.map(() => []), predicted: traces.map(() => []) };
  const row = (xv: number, ai: number | null, withPredicted: boolean) => {
    out.x.push(xv);
    actual.forEach((col, k) => out.actual[k]!.push(ai === null ? null : (col[ai] ?? null)));
    byX.forEach((m, k) => out.predicted[k]!.push(withPredicted ? (m.get(xv) ?? null) : null));
  };
  let i = 0;
  let j = 0;
  while (i < x.length || j < ox.length) {
    if (j >= ox.length || (i < x.length && x[i]! < ox[j]!)) row(x[i]!, i++, false);
    else if (i < x.length && x[i] === ox[j]) row(ox[j++]!, i++, true);
    else row(ox[j++]!, null, true);
  }
  return out;
}

/** The dashed series of a subplot's predicted traces (after its own series, same colours). */
export function overlaySeries(traces: readonly OverlayTrace[], colorOf: (tag: string) => string, scaleOf: (tag: string) => string): uPlot.Series[] {
  return traces.map((tr) => ({
    label: `${tr.tag} predicted`,
    scale: scaleOf(tr.tag),
    stroke: colorOf(tr.tag),
    width: 1.5,
    dash: [6, 4],
    spanGaps: true,
    points: { show: false },
  }));
}

/** The predicted traces of the unit's plot: the editor's last Simulate result, until Start. */
export const PREDICTION_EVENT = "setpoint-editor-prediction";

export interface EditorPrediction {
  unitId: string;
  prediction: Prediction | null;
}

/** A predicted mark on the plot's x. */
export interface OverlayMark {
  x: number;
  text: string;
}

/** The predicted marks, placed as overlayTraces places the traces. */
export function overlayMarks(overlay: Overlay | null, axis: string, clock: boolean, now: number): OverlayMark[] {
  if (!overlay || (!clock && axis !== RUN_TIME)) return [];
  const offset = clock ? (overlay.start ?? now) : 0;
  return overlay.prediction.marks.map((m) => ({ x: m.run_time + offset, text: m.text }));
}

/** Predicted marks as long-dashed lines labelled at the bottom (the actual marks: short dashes,
 *  labelled at the top), so both can be read where they fall together. */
export function drawPredictedMarks(u: uPlot, marks: readonly OverlayMark[], ratio: number): void {
  if (marks.length === 0) return;
  const ctx = u.ctx;
  const { left, top, width, height } = u.bbox;
  ctx.save();
  ctx.beginPath();
  ctx.rect(left, top, width, height);
  ctx.clip();
  ctx.strokeStyle = "#6b7280";
  ctx.fillStyle = "#374151";
  ctx.setLineDash([10 * ratio, 6 * ratio]);
  ctx.font = `italic ${11 * ratio}px system-ui, sans-serif`;
  ctx.textBaseline = "bottom";
  for (const m of marks) {
    const px = u.valToPos(m.x, "x", true);
    if (px < left || px > left + width) continue;
    ctx.beginPath();
    ctx.moveTo(px, top);
    ctx.lineTo(px, top + height);
    ctx.stroke();
    ctx.fillText(`${m.text} (predicted)`, px + 3 * ratio, top + height - 2 * ratio);
  }
  ctx.restore();
}
