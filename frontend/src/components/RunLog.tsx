// The run log: every instruction and command of the run, with progress, who issued it, and
// cancel/force (each confirmed) for lines that allow it.

import { useEffect, useRef, useState } from "preact/hooks";
import { useApp } from "../state/app";
import { runLogLineMatches } from "../state/merge";
import { formatClock, formatDuration } from "../lib/format";
import type { RunLogLine } from "../types";
import { ProgressBar } from "./bits";
import { ConfirmDialog } from "./Dialog";

interface Props {
  lines: RunLogLine[];
  /** null for a finished run (read-only) */
  unitId: string | null;
  canOperate: boolean;
  runStart?: number | null;
}

const STATES = ["all", "running", "completed", "cancelled", "forced", "failed"];

export function RunLogTable({ lines, unitId, canOperate, runStart }: Props) {
  const app = useApp();
  const [filter, setFilter] = useState("");
  const [state, setState] = useState("all");
  const [ask, setAsk] = useState<{ line: RunLogLine; action: "cancel" | "force" } | null>(null);
  const scroller = useRef<HTMLDivElement>(null);
  const atBottom = useRef(true);
  const shown = lines.filter((l) => runLogLineMatches(l, filter, state));
  const t0 = runStart ?? lines[0]?.start ?? null;

  useEffect(() => {
    const el = scroller.current;
    if (el && atBottom.current) el.scrollTop = el.scrollHeight;
  }, [lines.length]);

  const doIt = async () => {
    if (!ask || !unitId) return;
    const { line, action } = ask;
    setAsk(null);
    try {
      if (action === "cancel") await app.api.cancelLine(unitId, line.id);
      else await app.api.forceLine(unitId, line.id);
      app.notify("success", `${action === "cancel" ? "Cancelled" : "Forced"}: ${line.text}`);
    } catch (e) {
      app.notify("error", `${action} refused: ${e instanceof Error ? e.message : String(e)}`);
    }
  };

  return (
    <div class="runlog">
      <div class="filters" role="search">
        <label>
          <span class="sr-only">Filter run log</span>
          <input type="search" placeholder="Filter commands or users" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} />
        </label>
        <label>
          <span class="sr-only">Line state</span>
          <select value={state} onChange={(e) => setState(e.currentTarget.value)}>
            {STATES.map((s) => (
              <option key={s} value={s}>
                {s === "all" ? "All states" : s}
              </option>
            ))}
          </select>
        </label>
        <span class="muted small" aria-live="polite">
          {shown.length} of {lines.length} lines
        </span>
      </div>
      <div
        class="table-wrap runlog-scroll"
        ref={scroller}
        tabIndex={0}
        aria-label="Run log lines"
        onScroll={(e) => {
          const el = e.currentTarget;
          atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
        }}
      >
        <table class="table table-compact">
          <thead>
            <tr>
              <th scope="col">Start</th>
              <th scope="col">Command</th>
              <th scope="col">State</th>
              {unitId && <th scope="col">Actions</th>}
            </tr>
          </thead>
          <tbody>
            {shown.length === 0 && (
              <tr>
                <td colSpan={unitId ? 4 : 3} class="muted">
                  {lines.length === 0 ? "Nothing has run yet." : "No line matches the filter."}
                </td>
              </tr>
            )}
            {shown.map((l) => (
              <tr key={l.id} data-testid="runlog-line" data-state={l.state} class={`rl-${l.state}`}>
                <td title={formatClock(l.start)}>{t0 != null ? formatDuration(l.start - t0) : formatClock(l.start)}</td>
                <td>
                  <span class="mono">{l.text}</span>
                  <div class="small muted">
                    by {l.user ?? "method"}
                    {l.end && l.state !== "running" ? ` · took ${formatDuration(l.end - l.start)}` : ""}
                  </div>
                  {l.error && <div class="error-text small">{l.error}</div>}
                </td>
                <td>
                  <span class={`badge ls-${l.state}`}>{l.state}</span>
                  {l.state === "running" && <ProgressBar value={l.progress} label={`Progress of ${l.text}`} />}
                </td>
                {unitId && (
                  <td>
                    <div class="actions">
                    {l.state === "running" && l.cancellable && (
                      <button type="button" class="btn btn-small" disabled={!canOperate} onClick={() => setAsk({ line: l, action: "cancel" })}>
                        Cancel
                      </button>
                    )}
                    {l.state === "running" && l.forcible && (
                      <button type="button" class="btn btn-small" disabled={!canOperate} onClick={() => setAsk({ line: l, action: "force" })}>
                        Force
                      </button>
                    )}
                    </div>
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {ask && (
        <ConfirmDialog
          title={ask.action === "cancel" ? "Cancel this command?" : "Force this line?"}
          danger={ask.action === "cancel"}
          confirmLabel={ask.action === "cancel" ? "Cancel the command" : "Force it now"}
          message={
            <>
              <p class="mono">{ask.line.text}</p>
              <p>
                {ask.action === "cancel"
                  ? "The command stops where it is."
                  : "The line runs now: its threshold or wait is skipped, a watch fires as if its condition held."}
              </p>
            </>
          }
          onCancel={() => setAsk(null)}
          onConfirm={() => void doIt()}
        />
      )}
    </div>
  );
}
