// Where the plot's dashed prediction comes from: the prediction made at Start of a run
// (GET /api/runs/{id}/prediction), shown on the run view with a switch, and the editor's last
// Simulate result, shown on the unit's plot until Start.

import { useEffect, useState } from "preact/hooks";
import { useApp } from "../state/app";
import { ApiError } from "../api";
import { formatDuration } from "../lib/format";
import { PREDICTION_EVENT, type EditorPrediction, type Overlay } from "../lib/overlay";
import type { Prediction } from "../lib/prediction";

export interface StoredPrediction {
  run_id: string;
  requested: number;
  status: "finished" | "failed";
  reason: string;
  prediction: Prediction | null;
}

const RETRY_MS = 5000;

/** The run's prediction made at Start; while the run goes on and it is not kept yet, asked again. */
export function useRunPrediction(runId: string, running: boolean): StoredPrediction | null {
  const app = useApp();
  const [stored, setStored] = useState<StoredPrediction | null>(null);
  useEffect(() => {
    let cancelled = false;
    let timer: ReturnType<typeof setTimeout> | null = null;
    const ask = () => {
      app.api
        .request<StoredPrediction>("GET", `/api/runs/${encodeURIComponent(runId)}/prediction`)
        .then((found) => !cancelled && setStored(found))
        .catch((e: unknown) => {
          if (!cancelled && running && e instanceof ApiError && e.status === 404) timer = setTimeout(ask, RETRY_MS);
        });
    };
    ask();
    return () => {
      cancelled = true;
      if (timer) clearTimeout(timer);
    };
  }, [runId, running]);
  return stored;
}

/** The switch and summary above a run's plot; `overlay` is what the plot should draw. */
export function RunPredictionBar({ stored, start, shown, onShown }: { stored: StoredPrediction | null; start: number; shown: boolean; onShown: (v: boolean) => void }) {
  if (!stored) return null;
  if (stored.status !== "finished" || !stored.prediction)
    return (
      <p class="small muted" data-testid="run-prediction">
        No prediction was made at Start: {stored.reason || "unknown reason"}
      </p>
    );
  return (
    <p class="small" data-testid="run-prediction" data-start={start}>
      <label>
        <input type="checkbox" checked={shown} onChange={(e) => onShown(e.currentTarget.checked)} /> Show the prediction made at Start (dashed)
      </label>{" "}
      · predicted duration {formatDuration(stored.prediction.duration)} ({stored.prediction.end_state})
    </p>
  );
}

export function runOverlay(stored: StoredPrediction | null, start: number, shown: boolean): Overlay | null {
  return shown && stored?.status === "finished" && stored.prediction ? { prediction: stored.prediction, start } : null;
}

/** Tell the unit's plot about the editor's Simulate result (null: forget it). */
export function announceEditorPrediction(unitId: string, prediction: Prediction | null): void {
  window.dispatchEvent(new CustomEvent<EditorPrediction>(PREDICTION_EVENT, { detail: { unitId, prediction } }));
}

/** The editor's last Simulate result for this unit, as the unit's plot overlay (until Start). */
export function useEditorPrediction(unitId: string): Prediction | null {
  const [prediction, setPrediction] = useState<Prediction | null>(null);
  useEffect(() => {
    setPrediction(null);
    const heard = (e: Event) => {
      const detail = (e as CustomEvent<EditorPrediction>).detail;
      if (detail?.unitId === unitId) setPrediction(detail.prediction);
    };
    window.addEventListener(PREDICTION_EVENT, heard);
    return () => window.removeEventListener(PREDICTION_EVENT, heard);
  }, [unitId]);
  return prediction;
}
