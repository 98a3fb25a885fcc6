import { useEffect, useMemo, useState } from "preact/hooks";
import { signal } from "@preact/signals";
import { useApp } from "../state/app";
import { href } from "../state/route";
import { Spinner } from "../components/bits";
import { RunLogTable } from "../components/RunLog";
import { ErrorLogList } from "../components/ErrorLog";
import { CsvDownload } from "../components/CsvDownload";
import { HighlightedCode } from "../components/HighlightedCode";
import { PlotPanel, plotConfigOf, plotTags } from "../components/PlotPanel";
import { SeriesBuffer } from "../lib/plotdata";
import { fetchPlotTolerant } from "../lib/plotfetch";
import { formatDateTime, formatDuration } from "../lib/format";
import type { RunDetail } from "../types";
import { alarmMarks } from "../lib/alarms";
import { journal } from "../lib/alarmsApi";
import { RunRecord } from "../components/RunRecord";
import { RunPredictionBar, runOverlay, useRunPrediction } from "../components/PredictionOverlay";

export function RunView({ id }: { id: string }) {
  const app = useApp();
  const [run, setRun] = useState<RunDetail | null>(null);
  const [error, setError] = useState<string | null>(null);
  const buffer = useMemo(() => new SeriesBuffer(100_000), [id]);
  const version = useMemo(() => signal(0), [id]);
  const config = useMemo(() => (run ? plotConfigOf(run.uod) : null), [run]);
  const predicted = useRunPrediction(id, !!run && run.stopped == null);
  const [predictionShown, setPredictionShown] = useState(true);
  const overlay = useMemo(() => runOverlay(predicted, run?.started ?? 0, predictionShown), [predicted, run, predictionShown]);

  useEffect(() => {
    app.api
      .run(id)
      .then(setRun)
      .catch((e: Error) => setError(e.message));
  }, [id]);

  useEffect(() => {
    if (!config) return;
    buffer.setAnnotationTags(config.annotation_tags ?? ["Mark"]);
    const alarms = journal(app.api, { run_id: id, limit: 1000 }).catch(() => ({ entries: [] }));
    fetchPlotTolerant((tags) => app.api.runPlot(id, tags, 2000), plotTags(config))
      .then(async ({ data }) => {
        // the run's alarms, marked where they were raised
        data = { ...data, annotations: [...data.annotations, ...alarmMarks((await alarms).entries, run?.started ?? 0)] };
        // A finished run's series are held to its end; one still going on, to its newest sample.
        buffer.setEnd(run?.stopped ?? null);
        buffer.seed(data);
        version.value++;
      })
      .catch((e: Error) => app.notify("error", `Plot: ${e.message}`));
  }, [config]);

  if (error)
    return (
      <section class="panel">
        <h1>Run {id}</h1>
        <p class="error-text" role="alert">
          {error}
        </p>
      </section>
    );
  if (!run) return <Spinner label="Loading run…" />;
  const commands = new Set((run.uod.commands ?? []).map((c) => c.name));
  return (
    <div class="run-view" data-testid="run-view">
      <div class="unit-head">
        <h1>
          Run of {run.unit_name ?? run.unit_id}
          {run.batch_name ? ` · ${run.batch_name}` : ""}
        </h1>
        <dl class="facts facts-inline">
          <dt>Run id</dt>
          <dd class="mono">{run.id}</dd>
          <dt>Started</dt>
          <dd>{formatDateTime(run.started)}</dd>
          <dt>Duration</dt>
          <dd>{run.stopped ? formatDuration(run.stopped - run.started) : "running"}</dd>
          <dt>By</dt>
          <dd>{run.started_by || "–"}</dd>
          <dt>Stop reason</dt>
          <dd>{run.stop_reason || "–"}</dd>
        </dl>
        <CsvDownload run={run}>
          <a class="btn" href={href({ name: "unit", id: run.unit_id })}>
            Go to the unit
          </a>
        </CsvDownload>
      </div>
      <RunRecord runId={run.id} stopped={run.stopped != null} />
      <div class="unit-grid run-grid">
        <section class="panel area-plot" aria-labelledby="rplot-title">
          <h2 id="rplot-title">Plot</h2>
          <RunPredictionBar stored={predicted} start={run.started} shown={predictionShown} onShown={setPredictionShown} />
          {config && <PlotPanel config={config} buffer={buffer} version={version} label={`Plot of run ${run.id}`} live={false} uodName={run.uod.name} overlay={overlay} />}
        </section>
        <section class="panel area-runlog" aria-labelledby="rlog-title">
          <h2 id="rlog-title">Run log</h2>
          <RunLogTable lines={run.runlog} unitId={null} canOperate={false} runStart={run.started} />
        </section>
        <section class="panel area-method" aria-labelledby="rmethod-title">
          <h2 id="rmethod-title">Method as run (version {run.method?.version ?? run.method_version ?? "–"})</h2>
          <HighlightedCode text={run.method?.text ?? ""} commands={commands} method={run.method} />
          {run.methods && run.methods.length > 1 && (
            <details class="small">
              <summary>{run.methods.length} versions during the run</summary>
              <ol>
                {run.methods.map((m) => (
                  <li key={m.version}>
                    Version {m.version}, {formatDateTime(m.time)} by {m.user ?? "the method file"} ({m.lines.length} lines)
                  </li>
                ))}
              </ol>
            </details>
          )}
        </section>
        <section class="panel area-errors" aria-labelledby="rerr-title">
          <h2 id="rerr-title">Error log</h2>
          <ErrorLogList entries={run.errors ?? []} />
          {run.contributors && run.contributors.length > 0 && (
            <>
              <h3>Contributors</h3>
              <ul>
                {run.contributors.map((c) => (
                  <li key={c.user}>
                    {c.user}: {c.actions} actions
                  </li>
                ))}
              </ul>
            </>
          )}
        </section>
      </div>
    </div>
  );
}
