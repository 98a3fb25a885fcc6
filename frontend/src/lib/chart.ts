// The live plot: one uPlot per subplot of the UOD's plot configuration, several y axes each,
// coloured background regions for categorical tags, mark annotations, synchronized zoom and pan,
// and a choice of x axis. Loaded on demand (it pulls in uPlot).

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { PlotConfiguration, SubPlot } from "../types";
import { categoricalSpans, timeToX, type SeriesBuffer } from "./plotdata";
import { fullRange, heldIndex, latestValue, plotFrame, xRate, xSeriesOf, type Frame } from "./plotframe";
import { formatDuration, formatNumber } from "./format";
import { readableOnWhite } from "./contrast";
import { drawPredictedMarks, mergeOverlay, overlayMarks, overlaySeries, overlayTraces, type Overlay, type OverlayMark, type OverlayTrace } from "./overlay";

// Colour-blind-safe palette (Okabe-Ito), dark enough on white for lines.
const PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#8C564B"];

export interface ChartOptions {
  height: number;
  xAxis: string;
  /** false once the user zoomed or panned away from the whole run (which goes on to "now") */
  onFollowChange?: (following: boolean) => void;
  /** a prediction drawn dashed over the data (lib/overlay.ts) */
  overlay?: Overlay | null;
}

/** What the browser tests read back (host element's `setpointPlot.read()`): copies, read-only. */
export interface PlotProbe {
  xAxis: string;
  clock: boolean;
  following: boolean;
  until: number | null;
  predictedMarks: OverlayMark[];
  subplots: { tags: string[]; x: number[]; t: number[]; ys: (number | null)[][]; scale: { min: number | null; max: number | null }; predicted: OverlayTrace[] }[];
}

export interface ChartController {
  update(): void;
  setXAxis(name: string): void;
  zoom(factor: number): void;
  pan(fraction: number): void;
  resetZoom(): void;
  setOverlay(overlay: Overlay | null): void;
  isFollowing(): boolean;
  resize(): void;
  destroy(): void;
}

interface Sub {
  plot: uPlot;
  config: SubPlot;
  tags: string[];
  predicted: OverlayTrace[];
}

export function numericTags(sub: SubPlot): { tag: string; axis: number; color: string }[] {
  const out: { tag: string; axis: number; color: string }[] = [];
  let k = 0;
  sub.axes.forEach((axis, ai) => {
    axis.tags.forEach((tag, ti) => {
      const color = ti === 0 && axis.color ? axis.color : PALETTE[k % PALETTE.length]!;
      out.push({ tag, axis: ai, color });
      k++;
    });
  });
  return out;
}

export function createCharts(
  container: HTMLElement,
  config: PlotConfiguration,
  buffer: SeriesBuffer,
  opts: ChartOptions,
): ChartController {
  let xAxis = opts.xAxis;
  let overlay = opts.overlay ?? null;
  let following = true;
  const subplots = (config.subplots ?? []).filter((s) => s.axes.length > 0);
  const totalRatio = subplots.reduce((a, s) => a + (s.ratio ?? 1), 0) || 1;
  const subs: Sub[] = [];
  const syncKey = `sp-${Math.random().toString(36).slice(2)}`;
  const allTags = [...new Set(subplots.flatMap((s) => numericTags(s).map((t) => t.tag)))];
  let frame: Frame = plotFrame(buffer, allTags, xAxis);
  const stepped = uPlot.paths.stepped!({ align: 1 });

  const xSeries = () => xSeriesOf(buffer, xAxis);
  const clockX = () => xSeries() === null;
  const toX = (t: number) => timeToX(xSeries(), t, xRate(xAxis));
  const formatX = (v: number) =>
    builtClock ? new Date(v * 1000).toLocaleTimeString() : xAxis === "Run Time" ? formatDuration(v) : formatNumber(v);

  const setFollowing = (f: boolean) => {
    if (following !== f) {
      following = f;
      opts.onFollowChange?.(f);
    }
  };

  let builtClock = true;
  let predictedMarks: OverlayMark[] = [];
  const build = () => {
    builtClock = clockX();
    predictedMarks = overlayMarks(overlay, xAxis, builtClock, Date.now() / 1000);
    for (const s of subs) s.plot.destroy();
    subs.length = 0;
    container.replaceChildren();
    const width = Math.max(300, container.clientWidth);
    subplots.forEach((sub, i) => {
      const tags = numericTags(sub);
      const predicted = overlayTraces(overlay, tags.map((t) => t.tag), xAxis, builtClock, Date.now() / 1000);
      const tagOf = (name: string) => tags.find((t) => t.tag === name)!;
      const height = Math.max(180, Math.round((opts.height * (sub.ratio ?? 1)) / totalRatio));
      const isClock = builtClock;
      const el = document.createElement("div");
      el.className = "subplot";
      container.appendChild(el);
      const options: uPlot.Options = {
        width,
        height,
        cursor: {
          sync: { key: syncKey },
          drag: { x: true, y: false, setScale: true },
          // Under the cursor each series shows the sample in force there (a value holds until it changes).
          dataIdx: (u, sidx, idx) => (sidx === 0 ? idx : (heldIndex(u.data[sidx] as (number | null)[], idx) ?? idx)),
        },
        legend: { show: true, live: true },
        scales: Object.fromEntries([
          ["x", { time: isClock }],
          ...sub.axes.map((a, ai) => [
            `y${ai}`,
            a.y_min != null || a.y_max != null
              ? { range: (_u: uPlot, min: number, max: number) => [a.y_min ?? min, a.y_max ?? max] as uPlot.Range.MinMax }
              : {},
          ]),
        ]),
        axes: [
          {
            label: i === subplots.length - 1 ? (isClock ? "Time of day" : xAxis) : undefined,
            values: isClock
              ? undefined
              : (u, splits) => {
                  const span = (u.scales.x?.max ?? 0) - (u.scales.x?.min ?? 0);
                  return splits.map((v) => (xAxis === "Run Time" && span >= 120 ? formatDuration(v) : xAxis === "Run Time" ? `${formatNumber(v)} s` : formatNumber(v)));
                },
            stroke: "#1f2933",
            grid: { stroke: "#e3e7ec" },
          },
          ...sub.axes.map((a, ai) => ({
            scale: `y${ai}`,
            label: a.label,
            side: ai % 2 === 0 ? 3 : 1,
            stroke: a.color ? readableOnWhite(a.color) : "#1f2933",
            grid: { show: ai === 0, stroke: "#e3e7ec" },
            values: (_u: uPlot, splits: number[]) => splits.map((v) => formatNumber(v)),
            size: 60,
          })),
        ],
        series: [
          {
            label: isClock ? "Time" : xAxis,
            // Off the plot (no index) the legend shows the latest values: "now", or the run's end.
            value: (u: uPlot, v: number | null, _s: number, idx: number | null) => {
              const x = idx == null ? latestValue(u.data[0] as number[]) : v;
              return x == null ? "–" : formatX(x);
            },
          },
          ...tags.map((t) => ({
            label: t.tag,
            scale: `y${t.axis}`,
            stroke: t.color,
            width: 1.5,
            spanGaps: true,
            paths: stepped,
            points: { show: false },
            value: (u: uPlot, v: number | null, sidx: number, idx: number | null) => {
              const y = idx == null ? latestValue(u.data[sidx] as (number | null)[]) : v;
              return y == null ? "–" : formatNumber(y);
            },
          })),
          ...overlaySeries(predicted, (tag) => tagOf(tag).color, (tag) => `y${tagOf(tag).axis}`),
        ],
        hooks: {
          drawClear: [(u) => drawRegions(u, sub)],
          draw: [(u) => drawMarks(u), (u) => drawPredictedMarks(u, predictedMarks, uPlot.pxRatio)],
          setSelect: [() => setFollowing(false)],
          setScale: [
            (u, key) => {
              if (key !== "x") return;
              const { min, max } = u.scales.x!;
              if (min == null || max == null) return;
              for (const other of subs) {
                const o = other.plot.scales.x!;
                if (other.plot !== u && (o.min !== min || o.max !== max)) other.plot.setScale("x", { min, max });
              }
            },
          ],
        },
      };
      const plot = new uPlot(options, [[]], el);
      plot.over.addEventListener("dblclick", () => resetZoom());
      subs.push({ plot, config: sub, tags: tags.map((t) => t.tag), predicted });
    });
    update();
  };

  const drawRegions = (u: uPlot, sub: SubPlot) => {
    const regions = sub.color_regions ?? [];
    if (regions.length === 0) return;
    const ctx = u.ctx;
    const { left, top, width, height } = u.bbox;
    const until = buffer.until() ?? 0;
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, width, height);
    ctx.clip();
    ctx.globalAlpha = 0.6;
    // A state set a moment before the x tag's first sample (the run's first scan) starts with it.
    const xStart = xSeries()?.t[0] ?? -Infinity;
    for (const region of regions) {
      for (const span of categoricalSpans(buffer.get(region.tag), until)) {
        const color = region.colors[span.value];
        if (!color) continue;
        const x0 = toX(Math.max(span.from, xStart));
        const x1 = toX(span.to);
        if (x0 == null || x1 == null) continue;
        const p0 = u.valToPos(x0, "x", true);
        const p1 = u.valToPos(x1, "x", true);
        ctx.fillStyle = color;
        ctx.fillRect(Math.min(p0, p1), top, Math.max(1, Math.abs(p1 - p0)), height);
      }
    }
    ctx.restore();
  };

  const drawMarks = (u: uPlot) => {
    const marks = buffer.marks();
    if (marks.length === 0) return;
    const ctx = u.ctx;
    const { left, top, width, height } = u.bbox;
    const ratio = uPlot.pxRatio;
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, width, height);
    ctx.clip();
    ctx.strokeStyle = "#4a5563";
    ctx.fillStyle = "#1f2933";
    ctx.setLineDash([4 * ratio, 3 * ratio]);
    ctx.font = `${11 * ratio}px system-ui, sans-serif`;
    ctx.textBaseline = "top";
    for (const m of marks) {
      const x = toX(m.t);
      if (x == null) continue;
      const px = u.valToPos(x, "x", true);
      if (px < left || px > left + width) continue;
      ctx.beginPath();
      ctx.moveTo(px, top);
      ctx.lineTo(px, top + height);
      ctx.stroke();
      ctx.fillText(m.text, px + 3 * ratio, top + 2 * ratio);
    }
    ctx.restore();
  };

  function update() {
    // The x axis tag may arrive after the plot was built on the clock (or vanish): rebuild.
    if (clockX() !== builtClock) {
      build();
      return;
    }
    frame = plotFrame(buffer, allTags, xAxis);
    const ends = [...frame.x.slice(0, 1), ...frame.x.slice(-1)];
    for (const s of subs) {
      const merged = mergeOverlay(frame.x, s.tags.map((t) => frame.ys.get(t)!), s.predicted);
      ends.push(...merged.x.slice(0, 1), ...merged.x.slice(-1));
      s.plot.setData([merged.x, ...merged.actual, ...merged.predicted] as uPlot.AlignedData, following);
    }
    // One explicit x range for every subplot: the whole run (and prediction), up to now or to its end.
    const range = fullRange({ ...frame, x: ends.sort((a, b) => a - b) });
    if (following && range) for (const s of subs) s.plot.setScale("x", range);
  }

  const zoom = (factor: number) => {
    const p = subs[0]?.plot;
    if (!p) return;
    const { min, max } = p.scales.x!;
    if (min == null || max == null) return;
    const mid = (min + max) / 2;
    const half = ((max - min) / 2) * factor;
    setFollowing(false);
    p.setScale("x", { min: mid - half, max: mid + half });
  };

  const pan = (fraction: number) => {
    const p = subs[0]?.plot;
    if (!p) return;
    const { min, max } = p.scales.x!;
    if (min == null || max == null) return;
    const d = (max - min) * fraction;
    setFollowing(false);
    p.setScale("x", { min: min + d, max: max + d });
  };

  function resetZoom() {
    setFollowing(true);
    update();
  }

  const wheel = (e: WheelEvent) => {
    if (!e.ctrlKey && !e.shiftKey) return; // plain wheel scrolls the page
    e.preventDefault();
    if (e.shiftKey) pan(e.deltaY > 0 ? 0.1 : -0.1);
    else zoom(e.deltaY > 0 ? 1.25 : 0.8);
  };
  container.addEventListener("wheel", wheel, { passive: false });

  build();
  (container as unknown as { setpointPlot: { read(): PlotProbe } }).setpointPlot = {
    read: () => ({
      xAxis,
      clock: frame.clock,
      following,
      until: frame.until,
      predictedMarks: predictedMarks.map((m) => ({ ...m })),
      subplots: subs.map((s) => ({
        tags: s.tags.slice(),
        x: frame.x.slice(),
        t: frame.t.slice(),
        ys: s.tags.map((t) => frame.ys.get(t)!.slice()),
        scale: { min: s.plot.scales.x?.min ?? null, max: s.plot.scales.x?.max ?? null },
        predicted: s.predicted.map((p) => ({ tag: p.tag, x: p.x.slice(), v: p.v.slice() })),
      })),
    }),
  };

  return {
    update,
    setXAxis(name) {
      xAxis = name;
      setFollowing(true);
      build();
    },
    zoom,
    pan,
    resetZoom,
    setOverlay(next) {
      overlay = next;
      build();
    },
    isFollowing: () => following,
    resize() {
      const width = Math.max(300, container.clientWidth);
      for (const s of subs) s.plot.setSize({ width, height: s.plot.height });
    },
    destroy() {
      container.removeEventListener("wheel", wheel);
      for (const s of subs) s.plot.destroy();
      subs.length = 0;
    },
  };
}
