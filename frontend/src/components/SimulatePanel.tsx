// Simulate: the method in the editor run on the unit's process model (run_model), before Start.
// Shows the predicted duration, the predicted marks on a timeline and each plotted tag's
// predicted trace (dashed). Nothing on the unit changes.

import { useState } from "preact/hooks";
import { useApp } from "../state/app";
import { ApiError } from "../api";
import type { UodDescription } from "../types";
import { formatDuration, formatNumber } from "../lib/format";
import { axisRange, timelinePercent, tracePath, type Prediction } from "../lib/prediction";
import { announceEditorPrediction } from "./PredictionOverlay";

interface Props {
  unitId: string;
  /** the text to simulate: the editor's, saved or not */
  text: () => string;
  uod?: UodDescription | null;
}

const WIDTH = 600;
const HEIGHT = 80;
const COLORS = ["#1f77b4", "#2ca02c", "#d62728", "#8c564b", "#9467bd"];

export function SimulatePanel({ unitId, text, uod }: Props) {
  const app = useApp();
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<Prediction | null>(null);
  const [error, setError] = useState<string | null>(null);

  const simulate = async () => {
    setBusy(true);
    setError(null);
    try {
      const path = `/api/units/${encodeURIComponent(unitId)}/simulate`;
      const found = await app.api.request<Prediction>("POST", path, { method: text() });
      setResult(found);
      announceEditorPrediction(unitId, found);
    } catch (e) {
      setResult(null);
      announceEditorPrediction(unitId, null);
      setError(e instanceof ApiError || e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="simulate-panel" data-testid="simulate-panel">
      <div class="toolbar">
        <button type="button" class="btn btn-small" disabled={busy} onClick={() => void simulate()}>
          {busy ? "Simulating…" : "Simulate"}
        </button>
        {result && (
          <span class="small" data-testid="predicted-duration">
            Predicted duration {formatDuration(result.duration)} ({result.end_state})
          </span>
        )}
      </div>
      {error && (
        <p class="error-text small" role="alert">
          {error}
        </p>
      )}
      {result && <Timeline result={result} />}
      {result && <Traces result={result} uod={uod ?? null} />}
    </div>
  );
}

function Timeline({ result }: { result: Prediction }) {
  const events = [
    ...result.marks.map((m) => ({ ...m, kind: "mark" })),
    ...result.watches.map((w) => ({ ...w, kind: "watch" })),
    ...result.alarms.map((a) => ({ run_time: a.run_time, text: `Alarm ${a.name}`, kind: "alarm" })),
  ].sort((a, b) => a.run_time - b.run_time);
  return (
    <div data-testid="predicted-timeline">
      <div style={{ position: "relative", height: "12px", background: "#eef2f6", borderRadius: "3px", margin: "6px 0" }}>
        {events.map((e, i) => (
          <span
            key={i}
            title={`${formatDuration(e.run_time)} ${e.text}`}
            style={{
              position: "absolute",
              left: `${timelinePercent(e.run_time, result.duration)}%`,
              top: 0,
              width: "2px",
              height: "12px",
              background: e.kind === "mark" ? "#1f77b4" : e.kind === "watch" ? "#ff7f0e" : "#d62728",
            }}
          />
        ))}
      </div>
      <ol class="small" style={{ margin: 0, paddingLeft: "1.2em" }}>
        {events.map((e, i) => (
          <li key={i} data-testid={e.kind === "mark" ? "predicted-mark" : "predicted-event"}>
            {formatDuration(e.run_time)} {e.text}
          </li>
        ))}
      </ol>
    </div>
  );
}

function Traces({ result, uod }: { result: Prediction; uod: UodDescription | null }) {
  const subplots = uod?.plot?.subplots ?? [{ axes: [{ label: "", tags: Object.keys(result.trace) }] }];
  return (
    <div data-testid="predicted-plot">
      {subplots.map((sub, s) => (
        <svg key={s} viewBox={`0 0 ${WIDTH} ${HEIGHT}`} width="100%" height={HEIGHT} role="img" aria-label="predicted trace">
          {sub.axes.map((axis, a) => {
            const [lo, hi] = axisRange(axis.tags, result.tags, axis.y_min, axis.y_max);
            const box = { width: WIDTH, height: HEIGHT, yMin: lo, yMax: hi, duration: result.duration };
            return axis.tags.map((tag, t) => {
              const series = result.trace[tag];
              if (!series) return null;
              const color = axis.color ?? COLORS[(a + t) % COLORS.length];
              const stats = result.tags[tag];
              return (
                <path key={tag} d={tracePath(series, box)} fill="none" stroke={color} stroke-width="1.5" stroke-dasharray="5 3" data-tag={tag}>
                  <title>
                    {tag} (predicted){stats ? `: ${formatNumber(stats.min)} … ${formatNumber(stats.max)}` : ""}
                  </title>
                </path>
              );
            });
          })}
        </svg>
      ))}
    </div>
  );
}
