import { useEffect, useMemo, useState } from "preact/hooks";
import { effect } from "@preact/signals";
import { useApp } from "../state/app";
import { createUnitLive, type UnitLive } from "../state/unit";
import { liveRunTime } from "../state/merge";
import { LiveBadge, Spinner, StateBadge } from "../components/bits";
import { ControlBar } from "../components/ControlBar";
import { CommandBox } from "../components/CommandBox";
import { FailedLines } from "../components/FailedLines";
import { ProcessValues } from "../components/ProcessValues";
import { RunLogTable } from "../components/RunLog";
import { ErrorLogList } from "../components/ErrorLog";
import { MethodPanel } from "../components/MethodPanel";
import { MethodSource } from "../components/MethodSource";
import { PlotPanel, plotConfigOf, plotStartTags, plotTags } from "../components/PlotPanel";
import { useEditorPrediction } from "../components/PredictionOverlay";
import { formatDateTime, formatDuration } from "../lib/format";
import { fetchPlotTolerant } from "../lib/plotfetch";
import type { ProcessValueDescription, RunSummary, TagDescription, UnitDetail, UnitSummary } from "../types";
import { href } from "../state/route";

/** How often the plot asks again for data the server may not have stored yet. */
const PLOT_RETRIES = 10;
/** How often the plot of a run going on is read again from storage (the live samples fill in between). */
const PLOT_REFRESH_MS = 15_000;

export function UnitView({ id }: { id: string }) {
  const app = useApp();
  const [detail, setDetail] = useState<UnitDetail | null>(null);
  const [error, setError] = useState<string | null>(null);
  const live = useMemo(() => createUnitLive(app.live, id, ["Mark"], (text) => app.notify("info", `${id}: ${text}`)), [id]);
  useEffect(() => () => live.dispose(), [live]);

  useEffect(() => {
    app.api
      .unit(id)
      .then((d) => {
        setDetail(d);
        live.samples.setAnnotationTags(d.uod.plot?.annotation_tags ?? ["Mark"]);
        if (live.tags.peek().size === 0) live.tags.value = new Map(d.tags.map((t) => [t.name, t]));
      })
      .catch((e: Error) => setError(e.message));
  }, [id]);

  const plotConfig = useMemo(() => (detail ? plotConfigOf(detail.uod) : null), [detail]);

  // The plot starts from the run's stored history, reloaded when a new run begins.
  const summaryFromList = app.units.value.find((u) => u.id === id);
  const control = live.control.value;
  const summary = control ?? summaryFromList ?? detail;
  const runId = summary?.run_id ?? null;
  const active = !!summary?.state && summary.state !== "Stopped";
  live.recording = active;
  live.runId = runId;
  const editorPrediction = useEditorPrediction(id);
  const editorOverlay = useMemo(() => (!active && editorPrediction ? { prediction: editorPrediction, start: null } : null), [active, editorPrediction]);
  const [lastRun, setLastRun] = useState<RunSummary | null>(null);
  // One effect per run id, so a new run starts from an empty plot: while a run goes on, its stored
  // history (then the live samples); while stopped, the unit's last run, held to its end.
  useEffect(() => {
    if (!plotConfig || !detail) return;
    const plot = live.samples;
    const tags = plotTags(plotConfig);
    const retryMs = Math.max(250, (detail.uod.data_log_interval ?? 1) * 1000);
    let cancelled = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const again = (load: (attempt: number) => void, attempt: number) => {
      if (!cancelled && attempt < PLOT_RETRIES) timer = setTimeout(() => load(attempt + 1), retryMs);
    };
    const redraw = () => live.samplesVersion.value++;
    let stopResync = () => {};
    if (!runId) {
      const loadLast = (attempt: number) => {
        app.api
          .runs({ unit_id: id, limit: 1 })
          .then(async (page) => {
            const last = page.items[0];
            if (cancelled || !last) return;
            const { data } = await fetchPlotTolerant((t) => app.api.runPlot(last.id, t, 2000), tags);
            if (cancelled) return;
            plot.clear();
            plot.setEnd(last.stopped ?? null);
            plot.seed(data);
            redraw();
            setLastRun(last);
            // A run that has just stopped may not be closed in storage yet: its end is still unknown.
            if (last.stopped == null) again(loadLast, attempt);
          })
          .catch(() => again(loadLast, attempt));
      };
      loadLast(0);
    } else {
      setLastRun(null);
      plot.clear();
      redraw();
      const load = (attempt: number) => {
        fetchPlotTolerant((t) => app.api.unitPlot(id, t, 2000), tags)
          .then(({ data }) => {
            if (cancelled) return;
            plot.seed(data);
            redraw();
            // Samples taken before the live ones began (the plot was cleared, or they were still
            // on their way to storage) are stored a moment later: ask again after a data-log
            // interval while the run's first sample (every tag's starting value) is missing, as
            // right after Start, and once anyway. Then now and again, and after the live samples
            // were resubscribed (a reconnect: samples sent meanwhile were missed).
            const incomplete = data.series.some((s) => s.t.length === 0 && startTags.has(s.tag));
            if (attempt === 0 || incomplete) again(load, attempt);
            else timer = setTimeout(() => load(1), PLOT_REFRESH_MS);
          })
          .catch(() => again(load, attempt));
      };
      const startTags = new Set(plotStartTags(plotConfig));
      load(0);
      let resynced = live.resync.peek();
      stopResync = effect(() => {
        if (live.resync.value === resynced) return;
        resynced = live.resync.value;
        clearTimeout(timer);
        load(1);
      });
    }
    return () => {
      cancelled = true;
      clearTimeout(timer);
      stopResync();
    };
  }, [plotConfig, runId]);

  if (error) {
    return (
      <section class="panel">
        <h1>Unit {id}</h1>
        <p class="error-text" role="alert">
          {error}
        </p>
        <a href="#/">Back to the units</a>
      </section>
    );
  }
  if (!detail || !summary) return <Spinner label="Loading unit…" />;

  const user = app.user.value;
  const canOperate = user?.role === "operator" || user?.role === "admin";
  const connected = app.connection.value.status === "open";
  const online = !!summary.online;
  const allStale = !connected || !online || !!summary.stale;
  const tagInfo = new Map<string, TagDescription>((detail.uod.tags ?? []).map((t) => [t.name, t]));
  const pvs: ProcessValueDescription[] = detail.uod.process_values?.length
    ? detail.uod.process_values
    : (detail.uod.tags ?? []).filter((t) => t.kind !== "system").map((t) => ({ tag: t.name, kind: "readonly" as const }));
  const commands = new Set((detail.uod.commands ?? []).map((c) => c.name));
  const watchers = live.watchers.value;
  const me = user?.name;
  const others = watchers.filter((w) => w !== me);

  return (
    <div class="unit-view" data-testid="unit-view">
      <div class="unit-head">
        <h1>{summary.name || detail.uod.name}</h1>
        <div class="badges">
          <span data-testid="unit-state">
            <StateBadge state={summary.state} />
          </span>
          <LiveBadge online={online} stale={summary.stale || !connected} />
        </div>
        <UnitFacts live={live} summary={summary} />
        <p class="watchers small" data-testid="watchers" aria-live="polite">
          {others.length === 0 ? "Only you are watching." : `Also watching: ${others.join(", ")}`}
        </p>
      </div>
      <ControlBar unitId={id} unitName={summary.name} state={summary.state} online={online} canOperate={canOperate} />
      <div class="unit-grid">
        <section class="panel area-pv" aria-labelledby="pv-title">
          <h2 id="pv-title">Process values</h2>
          <ProcessValues
            unitId={id}
            values={pvs}
            tags={live.tags}
            tagInfo={tagInfo}
            commands={detail.uod.commands ?? []}
            allStale={allStale}
            canOperate={canOperate && online}
          />
          <CommandBox unitId={id} canOperate={canOperate} online={online} uod={detail.uod} tags={live.tags} />
        </section>
        <section class="panel area-plot" aria-labelledby="plot-title">
          <h2 id="plot-title">
            Plot{" "}
            {!active && lastRun && (
              <span class="small muted">
                · last run, started {formatDateTime(lastRun.started)} (<a href={href({ name: "run", id: lastRun.id })}>open</a>)
              </span>
            )}
          </h2>
          {plotConfig && (
            <PlotPanel
              config={plotConfig}
              buffer={live.samples}
              version={live.samplesVersion}
              label={`Live plot of ${summary.name}`}
              live={active}
              uodName={detail.uod.name}
              overlay={editorOverlay}
            />
          )}
        </section>
        <section class="panel area-runlog" aria-labelledby="runlog-title">
          <h2 id="runlog-title">Run log</h2>
          <LiveRunLog live={live} unitId={id} canOperate={canOperate && online} />
        </section>
        <section class="panel area-method" aria-labelledby="method-title">
          <h2 id="method-title">Method</h2>
          <MethodSource unitId={id} method={live.method} />
          <FailedLines live={live} unitId={id} canOperate={canOperate && online} paused={summary.state === "Paused"} />
          <MethodPanel unitId={id} method={live.method} commands={commands} canEdit={canOperate} active={!!summary.state && summary.state !== "Stopped"} uod={detail.uod} tags={live.tags} />
        </section>
        <section class="panel area-errors" aria-labelledby="errors-title">
          <h2 id="errors-title">Error log</h2>
          <LiveErrors live={live} />
        </section>
      </div>
    </div>
  );
}

/**
 * Run time, block and method status. The unit's own Run Time and Block tags are the freshest
 * truth; the summary is the fallback. Its own component: tag changes (10 per second) and the
 * clock re-render only this and the process values, not the whole view.
 */
function UnitFacts({ live, summary }: { live: UnitLive; summary: UnitSummary }) {
  const app = useApp();
  const tags = live.tags.value;
  const rtTag = tags.get("Run Time");
  const runTime = rtTag && rtTag.quality === "good" && typeof rtTag.value === "number" ? rtTag.value : liveRunTime(summary, app.now.value);
  const blockTag = tags.get("Block");
  const block = blockTag && typeof blockTag.value === "string" ? blockTag.value : summary.block;
  return (
    <dl class="facts facts-inline">
      <dt>Run time</dt>
      <dd data-testid="run-time">{summary.run_id ? formatDuration(runTime) : "–"}</dd>
      <dt>Block</dt>
      <dd data-testid="block">{block || "–"}</dd>
      <dt>Method</dt>
      <dd>{summary.method_status || "–"}</dd>
    </dl>
  );
}

function LiveRunLog({ live, unitId, canOperate }: { live: UnitLive; unitId: string; canOperate: boolean }) {
  return <RunLogTable lines={live.runlog.value.lines} unitId={unitId} canOperate={canOperate} />;
}

function LiveErrors({ live }: { live: UnitLive }) {
  return <ErrorLogList entries={live.errors.value} />;
}
