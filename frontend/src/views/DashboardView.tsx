import { useEffect, useState } from "preact/hooks";
import { useApp } from "../state/app";
import { liveRunTime } from "../state/merge";
import { href } from "../state/route";
import { LiveBadge, Spinner, StateBadge } from "../components/bits";
import { formatAge, formatDateTime, formatDuration } from "../lib/format";
import type { RunSummary, UnitSummary } from "../types";

export function DashboardView() {
  const app = useApp();
  const units = app.units.value;
  const runKey = units.map((u) => `${u.id}:${u.run_id ?? ""}`).join(",");
  return (
    <div class="dashboard">
      <section aria-labelledby="units-title">
        <h1 id="units-title">Units</h1>
        {!app.unitsLoaded.value ? (
          <Spinner label="Loading units…" />
        ) : units.length === 0 ? (
          <p class="muted">No units yet. A unit appears here when its engine connects to this server.</p>
        ) : (
          <ul class="unit-cards">
            {units.map((u) => (
              <UnitCard key={u.id} unit={u} now={app.now.value} />
            ))}
          </ul>
        )}
      </section>
      <RecentRuns refreshKey={runKey} />
    </div>
  );
}

function UnitCard({ unit, now }: { unit: UnitSummary; now: number }) {
  const stale = !unit.online || !!unit.stale;
  return (
    <li class={`unit-card${stale ? " is-stale" : ""}`} data-testid="unit-card" data-unit-id={unit.id}>
      <h2>
        <a href={href({ name: "unit", id: unit.id })}>{unit.name}</a>
      </h2>
      <div class="badges">
        <StateBadge state={unit.state} />
        <LiveBadge online={unit.online} stale={unit.stale} />
        {unit.method_status && unit.method_status !== "OK" && <span class="badge st-error">Method {unit.method_status}</span>}
      </div>
      <dl class="facts">
        <dt>Run time</dt>
        <dd data-testid="card-run-time">{unit.run_id ? formatDuration(liveRunTime(unit, now)) : "–"}</dd>
        <dt>Block</dt>
        <dd>{unit.block || "–"}</dd>
        <dt>Hardware</dt>
        <dd>{unit.connection_status || "–"}</dd>
        {!unit.online && (
          <>
            <dt>Last seen</dt>
            <dd>{formatAge(unit.last_seen, now)}</dd>
          </>
        )}
      </dl>
    </li>
  );
}

function RecentRuns({ refreshKey }: { refreshKey: string }) {
  const app = useApp();
  const [runs, setRuns] = useState<RunSummary[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    app.api
      .runs({ limit: 8 })
      .then((p) => live && (setRuns(p.items), setError(null)))
      .catch((e: Error) => live && setError(e.message));
    return () => {
      live = false;
    };
  }, [refreshKey]);
  return (
    <section aria-labelledby="recent-title" class="panel">
      <div class="panel-head">
        <h2 id="recent-title">Recent runs</h2>
        <a href="#/runs">All runs</a>
      </div>
      {error && <p class="error-text">{error}</p>}
      {!runs ? !error && <Spinner /> : runs.length === 0 ? <p class="muted">No runs yet.</p> : <RunsTable runs={runs} />}
    </section>
  );
}

export function RunsTable({ runs }: { runs: RunSummary[] }) {
  return (
    <div class="table-wrap">
      <table class="table">
        <thead>
          <tr>
            <th scope="col">Started</th>
            <th scope="col">Unit</th>
            <th scope="col">Batch</th>
            <th scope="col">Duration</th>
            <th scope="col">By</th>
            <th scope="col">Stop reason</th>
          </tr>
        </thead>
        <tbody>
          {runs.map((r) => (
            <tr key={r.id} data-testid="run-row">
              <td>
                <a href={href({ name: "run", id: r.id })}>{formatDateTime(r.started)}</a>
              </td>
              <td>{r.unit_name ?? r.unit_id}</td>
              <td>{r.batch_name || "–"}</td>
              <td>{r.stopped ? formatDuration(r.stopped - r.started) : <span class="badge st-running">Running</span>}</td>
              <td>{r.started_by || "–"}</td>
              <td>{r.stop_reason || "–"}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
