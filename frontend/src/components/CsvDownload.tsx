// "Download CSV" of a run with progress. The export is streamed without a Content-Length, so a
// plain link would show nothing for a long run; we fetch it, count bytes and rows as they
// arrive against an estimate from the run's duration, and save it as a Blob when complete.

import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "../api";
import { useApp } from "../state/app";
import { estimateRows, formatBytes, progressPercent, progressText, readCsvBody, type RunTimes } from "../lib/csvProgress";

type Phase =
  | { kind: "idle" }
  | { kind: "running"; rows: number; bytes: number }
  | { kind: "done"; rows: number; bytes: number }
  | { kind: "cancelled"; rows: number }
  | { kind: "error"; message: string };

/** at most this often (ms) a new count is rendered while the body streams in */
const RENDER_EVERY = 150;

function saveBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  a.style.display = "none";
  document.body.appendChild(a);
  a.click();
  a.remove();
  // the browser has taken the blob once the click is handled; give it time before revoking
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function isAbort(e: unknown): boolean {
  return e instanceof DOMException && e.name === "AbortError";
}

/** the Download CSV button (with Cancel while it runs), then `children` (more buttons of the
 *  same row), then the progress bar and status */
export function CsvDownload({ run, children }: { run: RunTimes & { id: string }; children?: ComponentChildren }) {
  const app = useApp();
  const [phase, setPhase] = useState<Phase>({ kind: "idle" });
  const [estimate, setEstimate] = useState<number | null>(null);
  const controller = useRef<AbortController | null>(null);
  const rowsSoFar = useRef(0);
  const downloadRef = useRef<HTMLButtonElement>(null);
  const cancelRef = useRef<HTMLButtonElement>(null);
  const running = phase.kind === "running";

  // leaving the run view ends a download in progress
  useEffect(() => () => controller.current?.abort(), []);

  // keyboard focus follows the button that applies: Cancel while running, Download after
  const wasRunning = useRef(false);
  useEffect(() => {
    if (running && !wasRunning.current) cancelRef.current?.focus();
    if (!running && wasRunning.current && document.activeElement === document.body) downloadRef.current?.focus();
    wasRunning.current = running;
  }, [running]);

  async function start() {
    if (controller.current) return;
    const ctl = new AbortController();
    controller.current = ctl;
    rowsSoFar.current = 0;
    setEstimate(estimateRows(run));
    setPhase({ kind: "running", rows: 0, bytes: 0 });
    let stage: "request" | "body" = "request";
    try {
      const res = await app.api.runCsv(run.id, ctl.signal);
      if (!res.body) throw new ApiError(0, "The response has no body");
      stage = "body";
      let last = 0;
      const result = await readCsvBody(res.body, (rows, bytes) => {
        rowsSoFar.current = rows;
        const now = performance.now();
        if (now - last >= RENDER_EVERY) {
          last = now;
          setPhase({ kind: "running", rows, bytes });
        }
      });
      const blob = new Blob(result.chunks as BlobPart[], { type: "text/csv;charset=utf-8" });
      saveBlob(blob, `${run.id}.csv`);
      setPhase({ kind: "done", rows: result.rows, bytes: result.bytes });
    } catch (e) {
      if (isAbort(e) || ctl.signal.aborted) setPhase({ kind: "cancelled", rows: rowsSoFar.current });
      else setPhase({ kind: "error", message: errorMessage(e, stage, rowsSoFar.current) });
    } finally {
      controller.current = null;
    }
  }

  function cancel() {
    controller.current?.abort();
  }

  const rows = phase.kind === "running" || phase.kind === "done" ? phase.rows : 0;
  const pct = phase.kind === "running" || phase.kind === "done" ? progressPercent(rows, estimate, phase.kind === "done") : null;
  const counted = phase.kind === "running" || phase.kind === "done" ? progressText(rows, estimate, phase.kind === "done") : "";
  let status = "";
  if (phase.kind === "running") status = `Downloading CSV: ${counted} (${formatBytes(phase.bytes)})`;
  else if (phase.kind === "done") status = `CSV downloaded: ${counted} (${formatBytes(phase.bytes)})`;
  else if (phase.kind === "cancelled") status = `CSV download cancelled after ${progressText(phase.rows, null, true)}.`;

  return (
    <div class="csv-export">
      <div class="row">
        <button
          type="button"
          class="btn btn-primary"
          data-testid="csv-download"
          ref={downloadRef}
          disabled={running}
          onClick={() => void start()}
        >
          Download CSV
        </button>
        {running && (
          <button type="button" class="btn" data-testid="csv-cancel" ref={cancelRef} onClick={cancel}>
            Cancel
          </button>
        )}
        {children}
      </div>
      {(phase.kind === "running" || phase.kind === "done") && (
        <div
          class="progress csv-progress-bar"
          role="progressbar"
          aria-label="CSV download"
          aria-valuemin={0}
          aria-valuemax={100}
          aria-valuenow={pct ?? undefined}
          aria-valuetext={counted}
          data-testid="csv-progress-bar"
        >
          <div class={pct === null ? "progress-fill progress-indeterminate" : "progress-fill"} style={{ width: `${pct ?? 100}%` }} />
          <span class="progress-text">{pct === null ? "" : `${pct} %`}</span>
        </div>
      )}
      <p class="csv-status small" role="status" aria-live="polite" data-testid="csv-progress" data-state={phase.kind}>
        {status}
      </p>
      {phase.kind === "error" && (
        <p class="error-text" role="alert" data-testid="csv-error">
          {phase.message}
        </p>
      )}
    </div>
  );
}

function errorMessage(e: unknown, stage: "request" | "body", rows: number): string {
  if (e instanceof ApiError) {
    if (e.status === 0) return `CSV download failed: ${e.message}.`;
    return `CSV download failed (HTTP ${e.status}): ${e.message}`;
  }
  if (stage === "body") return `CSV download failed: the connection broke after ${progressText(rows, null, true)}. Try again.`;
  return `CSV download failed: ${e instanceof Error ? e.message : String(e)}`;
}
