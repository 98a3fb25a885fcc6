// Fix and resume: while a run is paused by a failed method line, each such line with what went
// wrong and the two ways on: Resume from the failed line (it runs again as the method now says,
// so fix it in the editor and save first) or Skip it. The engine decides; a refusal is shown.

import { useState } from "preact/hooks";
import { useApp } from "../state/app";
import type { UnitLive } from "../state/unit";
import type { RunLogLine } from "../types";

interface Props {
  live: UnitLive;
  unitId: string;
  canOperate: boolean;
  paused: boolean;
}

interface Waiting {
  log: RunLogLine;
  number: number | null;
  text: string;
}

/** The latest failed attempt of each method line that is still failed and not run again since. */
export function waitingFailures(lines: readonly RunLogLine[], failed: readonly string[], method: readonly { id: string; text: string }[]): Waiting[] {
  const still = new Set(failed);
  const retried = new Set(lines.map((l) => l.retry_of).filter((x): x is string => !!x));
  const latest = new Map<string, RunLogLine>();
  for (const l of lines) {
    if (l.state === "failed" && l.line_id && still.has(l.line_id) && !retried.has(l.id)) latest.set(l.line_id, l);
  }
  return [...latest.values()].map((log) => {
    const at = method.findIndex((m) => m.id === log.line_id);
    return { log, number: at >= 0 ? at + 1 : null, text: at >= 0 ? method[at]!.text.trim() : log.text };
  });
}

export function FailedLines({ live, unitId, canOperate, paused }: Props) {
  const app = useApp();
  const [busy, setBusy] = useState<string | null>(null);
  const method = live.method.value;
  if (!paused || !method) return null;
  const waiting = waitingFailures(live.runlog.value.lines, method.failed, method.lines);
  if (waiting.length === 0) return null;

  const act = async (w: Waiting, skip: boolean) => {
    setBusy(w.log.id);
    try {
      await app.api.resumeLine(unitId, w.log.id, skip);
      app.notify("success", skip ? `Skipped line ${w.number ?? "?"}` : `Resumed from line ${w.number ?? "?"}`);
    } catch (err) {
      app.notify("error", `${skip ? "Skip" : "Resume"} refused: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      setBusy(null);
    }
  };

  return (
    <div class="banner banner-error failed-lines" role="region" aria-label="Failed lines" data-testid="failed-lines">
      {waiting.map((w) => (
        <div key={w.log.id} class="failed-line" data-testid="failed-line">
          <p>
            <strong>Line {w.number ?? "?"} failed</strong>: <code>{w.log.text}</code>
            {w.log.error ? ` (${w.log.error})` : ""}.{" "}
            {w.text !== w.log.text ? (
              <>
                It now reads <code>{w.text}</code>.
              </>
            ) : (
              "Fix it in the method below and save, then resume, or skip it."
            )}
          </p>
          {canOperate && (
            <p class="row">
              <button type="button" class="btn btn-primary btn-small" disabled={busy !== null} onClick={() => void act(w, false)}>
                Resume from line {w.number ?? "?"}
              </button>{" "}
              <button type="button" class="btn btn-small" disabled={busy !== null} onClick={() => void act(w, true)}>
                Skip line {w.number ?? "?"}
              </button>
            </p>
          )}
        </div>
      ))}
    </div>
  );
}
