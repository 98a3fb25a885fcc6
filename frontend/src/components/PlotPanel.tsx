// The plot of a unit's live run or of a stored run, from the UOD's plot configuration.

import { useEffect, useRef, useState } from "preact/hooks";
import { effect, type Signal } from "@preact/signals";
import type { ChartController } from "../lib/chart";
import { CLOCK_AXIS, type SeriesBuffer } from "../lib/plotdata";
import { RUN_TIME } from "../lib/plotframe";
import type { Overlay } from "../lib/overlay";
import { browserStore, loadXAxis, saveXAxis } from "../lib/prefs";
import { useApp } from "../state/app";
import type { PlotConfiguration, UodDescription } from "../types";

/** The UOD's plot configuration, or one built from its numeric process values when it has none. */
export function plotConfigOf(uod: UodDescription): PlotConfiguration {
  const cfg = uod.plot ?? {};
  if (cfg.subplots && cfg.subplots.length > 0) return cfg;
  const byUnit = new Map<string, string[]>();
  for (const pv of uod.process_values ?? []) {
    const t = uod.tags?.find((x) => x.name === pv.tag);
    if (!t || !t.unit) continue;
    byUnit.set(t.unit, [...(byUnit.get(t.unit) ?? []), t.name]);
  }
  const axes = [...byUnit.entries()].slice(0, 4).map(([unit, tags]) => ({ label: unit, tags }));
  return { ...cfg, subplots: axes.length ? [{ axes, ratio: 1 }] : [] };
}

/** Every tag the plot needs from the server: plotted tags, region tags, annotation tags, x axes. */
export function plotTags(cfg: PlotConfiguration): string[] {
  const tags = new Set<string>();
  for (const s of cfg.subplots ?? []) {
    for (const a of s.axes) for (const t of a.tags) tags.add(t);
    for (const r of s.color_regions ?? []) tags.add(r.tag);
  }
  for (const t of cfg.annotation_tags ?? []) tags.add(t);
  for (const t of cfg.x_axis_choices ?? []) tags.add(t);
  tags.add(cfg.x_axis ?? RUN_TIME);
  return [...tags];
}

/** The tags every sample of a run's start has a value for: the plotted numbers, regions and x axes. */
export function plotStartTags(cfg: PlotConfiguration): string[] {
  const annotations = new Set(cfg.annotation_tags ?? ["Mark"]);
  return plotTags(cfg).filter((t) => !annotations.has(t));
}

interface Props {
  config: PlotConfiguration;
  buffer: SeriesBuffer;
  version: Signal<number>;
  height?: number;
  label: string;
  /** a run going on: the plot follows "now" (a finished run has nothing to follow) */
  live: boolean;
  /** the UOD's name: the x-axis choice is kept per user and UOD */
  uodName: string;
  /** a prediction drawn dashed over the data */
  overlay?: Overlay | null;
}

export function PlotPanel({ config, buffer, version, height = 480, label, live, uodName, overlay = null }: Props) {
  const app = useApp();
  const user = app.user.value?.name ?? "";
  const host = useRef<HTMLDivElement>(null);
  const chart = useRef<ChartController | null>(null);
  const choices = [...new Set([...(config.x_axis_choices ?? []), config.x_axis ?? RUN_TIME, CLOCK_AXIS])];
  const [xAxis, setXAxis] = useState(() => loadXAxis(browserStore(), user, uodName, choices) ?? config.x_axis ?? RUN_TIME);
  const [following, setFollowing] = useState(true);
  const [ready, setReady] = useState(false);
  const overlayNow = useRef(overlay);
  overlayNow.current = overlay;

  useEffect(() => {
    let cancelled = false;
    void import("../lib/chart").then((mod) => {
      if (cancelled || !host.current) return;
      chart.current = mod.createCharts(host.current, config, buffer, { height, xAxis, onFollowChange: setFollowing, overlay: overlayNow.current });
      setReady(true);
    });
    const ro = typeof ResizeObserver !== "undefined" ? new ResizeObserver(() => chart.current?.resize()) : null;
    if (host.current) ro?.observe(host.current);
    return () => {
      cancelled = true;
      ro?.disconnect();
      chart.current?.destroy();
      chart.current = null;
    };
  }, [config, buffer]);

  const drawn = useRef(overlay);
  useEffect(() => {
    if (!ready || drawn.current === overlay) return;
    drawn.current = overlay;
    chart.current?.setOverlay(overlay);
  }, [ready, overlay]);

  // Redraw on new samples, at most once per animation frame.
  useEffect(() => {
    let pending = false;
    return effect(() => {
      void version.value;
      if (pending || !ready) return;
      pending = true;
      requestAnimationFrame(() => {
        pending = false;
        chart.current?.update();
      });
    });
  }, [ready, version]);

  const regions = (config.subplots ?? []).flatMap((s) => s.color_regions ?? []);
  if ((config.subplots ?? []).length === 0) return <p class="muted">This unit has no plot configured.</p>;
  return (
    <figure class="plot" aria-label={label} data-x-axis={xAxis} data-following={following ? "true" : "false"}>
      <div class="toolbar" role="toolbar" aria-label="Plot controls">
        <label>
          X axis{" "}
          <select
            value={xAxis}
            onChange={(e) => {
              const v = e.currentTarget.value;
              setXAxis(v);
              saveXAxis(browserStore(), user, uodName, v);
              chart.current?.setXAxis(v);
            }}
          >
            {choices.map((c) => (
              <option key={c} value={c}>
                {c}
              </option>
            ))}
          </select>
        </label>
        <span class="spacer" />
        <button type="button" class="btn btn-small" aria-label="Zoom in" onClick={() => chart.current?.zoom(0.5)}>
          +
        </button>
        <button type="button" class="btn btn-small" aria-label="Zoom out" onClick={() => chart.current?.zoom(2)}>
          −
        </button>
        <button type="button" class="btn btn-small" aria-label="Pan left" onClick={() => chart.current?.pan(-0.25)}>
          ◀
        </button>
        <button type="button" class="btn btn-small" aria-label="Pan right" onClick={() => chart.current?.pan(0.25)}>
          ▶
        </button>
        {live ? (
          <button type="button" class="btn btn-small" aria-pressed={following ? "true" : "false"} onClick={() => chart.current?.resetZoom()}>
            {following ? "Following" : "Reset zoom"}
          </button>
        ) : (
          <button type="button" class="btn btn-small" disabled={following} onClick={() => chart.current?.resetZoom()}>
            Reset zoom
          </button>
        )}
      </div>
      <div ref={host} class="plot-host" data-testid="plot" />
      <figcaption class="small muted">
        Drag across the plot to zoom, double-click to reset; Ctrl+wheel zooms, Shift+wheel pans.
        {regions.length > 0 && (
          <span class="region-legend">
            {regions.map((r) =>
              Object.entries(r.colors).map(([value, color]) => (
                <span key={`${r.tag}-${value}`} class="region-key">
                  <span class="swatch" style={{ background: color }} /> {r.tag} = {value}
                </span>
              )),
            )}
          </span>
        )}
      </figcaption>
    </figure>
  );
}
