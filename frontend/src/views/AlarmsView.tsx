// The Alarms page: every visible unit's alarms not in normal state (acknowledge, shelve, take out
// of service) and the journal of every transition, with filters.

import { useEffect, useState } from "preact/hooks";
import { useApp } from "../state/app";
import type { AlarmStore } from "../state/alarms";
import { href } from "../state/route";
import { Dialog } from "../components/Dialog";
import { Spinner } from "../components/bits";
import { formatDateTime } from "../lib/format";
import { STATE_LABELS, formatAlarmValue, isUnacknowledged, type AlarmView, type JournalEntry } from "../lib/alarms";
import { alarmAction, journal, type AlarmActionPath, type JournalFilter } from "../lib/alarmsApi";

type Asking = { alarm: AlarmView; action: "shelve" | "out-of-service" } | null;

export function AlarmsView({ store }: { store: AlarmStore }) {
  const app = useApp();
  const canAct = app.user.value?.role !== "viewer";
  const [asking, setAsking] = useState<Asking>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const [journalKey, setJournalKey] = useState(0);
  const unitName = (id: string) => app.units.value.find((u) => u.id === id)?.name ?? id;

  async function act(a: AlarmView, action: AlarmActionPath, body: Record<string, unknown> = {}) {
    setBusy(`${a.unit_id}/${a.name}`);
    try {
      await alarmAction(app.api, a.unit_id, a.name, action, body);
      app.notify("success", `${a.name}: ${action.replace(/-/g, " ")} sent`);
      setJournalKey((k) => k + 1);
    } catch (e) {
      app.notify("error", `${a.name}: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      setBusy(null);
    }
  }

  const list = store.active.value;
  return (
    <div class="alarms-view">
      <section class="panel" aria-labelledby="active-title">
        <h1 id="active-title">Alarms</h1>
        {!store.loaded.value ? (
          <Spinner label="Loading alarms…" />
        ) : list.length === 0 ? (
          <p class="muted" data-testid="no-alarms">
            No alarms: every alarm of the units you may see is normal.
          </p>
        ) : (
          <table class="table alarm-table" data-testid="active-alarms">
            <thead>
              <tr>
                <th scope="col">Priority</th>
                <th scope="col">Unit</th>
                <th scope="col">Alarm</th>
                <th scope="col">State</th>
                <th scope="col">Value</th>
                <th scope="col">Since</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {list.map((a) => {
                const key = `${a.unit_id}/${a.name}`;
                return (
                  <tr key={key} class={`alarm-row st-alarm-${a.state}`} data-alarm={a.name} data-state={a.state}>
                    <td>
                      <span class={`prio prio-${a.priority}`}>{a.priority}</span>
                    </td>
                    <td>
                      <a href={href({ name: "unit", id: a.unit_id })}>{unitName(a.unit_id)}</a>
                    </td>
                    <td>
                      <strong>{a.name}</strong>
                      {a.message && <div class="small">{a.message}</div>}
                      {a.condition && <div class="small muted mono">{a.condition}</div>}
                    </td>
                    <td>
                      <span class={`alarm-state alarm-state-${a.state}`}>{STATE_LABELS[a.state] ?? a.state}</span>
                      {a.state === "shelved" && a.shelved_until && <div class="small">until {formatDateTime(a.shelved_until)}</div>}
                      {a.comment && <div class="small muted">“{a.comment}”{a.user ? ` (${a.user})` : ""}</div>}
                    </td>
                    <td class="num">{formatAlarmValue(a.value)}</td>
                    <td>{formatDateTime(a.time ?? null)}</td>
                    <td>
                      {canAct && (
                        <AlarmButtons
                          alarm={a}
                          busy={busy === key}
                          onAct={(action) => void act(a, action)}
                          onAsk={(action) => setAsking({ alarm: a, action })}
                        />
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        )}
      </section>
      <Journal refreshKey={journalKey} changes={list} />
      {asking && (
        <ReasonDialog
          asking={asking}
          onClose={() => setAsking(null)}
          onSubmit={(body) => {
            const a = asking;
            setAsking(null);
            void act(a.alarm, a.action, body);
          }}
        />
      )}
    </div>
  );
}

function AlarmButtons({
  alarm,
  busy,
  onAct,
  onAsk,
}: {
  alarm: AlarmView;
  busy: boolean;
  onAct: (a: AlarmActionPath) => void;
  onAsk: (a: "shelve" | "out-of-service") => void;
}) {
  const label = (what: string) => `${what} ${alarm.name}`;
  return (
    <div class="btn-row">
      {isUnacknowledged(alarm) && (
        <button type="button" class="btn btn-primary btn-small" disabled={busy} aria-label={label("Acknowledge")} onClick={() => onAct("ack")}>
          Acknowledge
        </button>
      )}
      {alarm.state === "shelved" ? (
        <button type="button" class="btn btn-small" disabled={busy} aria-label={label("Unshelve")} onClick={() => onAct("unshelve")}>
          Unshelve
        </button>
      ) : (
        alarm.state !== "out_of_service" &&
        (alarm.max_shelve_minutes ?? 0) > 0 && (
          <button type="button" class="btn btn-small" disabled={busy} aria-label={label("Shelve")} onClick={() => onAsk("shelve")}>
            Shelve…
          </button>
        )
      )}
      {alarm.state === "out_of_service" ? (
        <button type="button" class="btn btn-small" disabled={busy} aria-label={label("Return to service")} onClick={() => onAct("return-to-service")}>
          Return to service
        </button>
      ) : (
        <button type="button" class="btn btn-small" disabled={busy} aria-label={label("Take out of service")} onClick={() => onAsk("out-of-service")}>
          Out of service…
        </button>
      )}
    </div>
  );
}

function ReasonDialog({ asking, onClose, onSubmit }: { asking: NonNullable<Asking>; onClose: () => void; onSubmit: (body: Record<string, unknown>) => void }) {
  const shelve = asking.action === "shelve";
  const max = asking.alarm.max_shelve_minutes ?? 60;
  const [minutes, setMinutes] = useState(String(Math.min(30, max)));
  const [reason, setReason] = useState("");
  const n = Number(minutes);
  const badMinutes = shelve && !(n > 0 && n <= max);
  const submit = (e?: Event) => {
    e?.preventDefault();
    if (!reason.trim() || badMinutes) return;
    onSubmit(shelve ? { minutes: n, reason: reason.trim() } : { reason: reason.trim() });
  };
  return (
    <Dialog
      title={shelve ? `Shelve ${asking.alarm.name}` : `Take ${asking.alarm.name} out of service`}
      onClose={onClose}
      actions={
        <>
          <button type="button" class="btn" onClick={onClose}>
            Cancel
          </button>
          <button type="button" class="btn btn-primary" disabled={!reason.trim() || badMinutes} onClick={() => submit()}>
            {shelve ? "Shelve" : "Take out of service"}
          </button>
        </>
      }
    >
      <form class="form" onSubmit={submit}>
        {shelve && (
          <label>
            Minutes (at most {max})
            <input type="number" min={1} max={max} value={minutes} aria-invalid={badMinutes ? "true" : undefined} onInput={(e) => setMinutes(e.currentTarget.value)} />
          </label>
        )}
        <label>
          Reason (required, kept in the journal)
          <textarea data-autofocus rows={3} maxLength={1000} value={reason} onInput={(e) => setReason(e.currentTarget.value)} />
        </label>
      </form>
    </Dialog>
  );
}

function toEpoch(local: string): number | null {
  if (!local) return null;
  const t = new Date(local).getTime();
  return Number.isFinite(t) ? t / 1000 : null;
}

// `changes`: the active alarms as last pushed over /ws; a transition is journaled before it is
// pushed, so each push is the moment to reload the journal (an action's answer comes earlier).
function Journal({ refreshKey, changes }: { refreshKey: number; changes: readonly unknown[] }) {
  const app = useApp();
  const [unit, setUnit] = useState("");
  const [since, setSince] = useState("");
  const [until, setUntil] = useState("");
  const [runId, setRunId] = useState("");
  const [entries, setEntries] = useState<JournalEntry[] | null>(null);
  const [next, setNext] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);
  const filter = (): JournalFilter => ({ unit_id: unit, run_id: runId.trim(), since: toEpoch(since), until: toEpoch(until), limit: 50 });

  const load = (cursor: number | null) => {
    journal(app.api, { ...filter(), cursor })
      .then((page) => {
        setEntries((old) => (cursor && old ? [...old, ...page.entries] : page.entries));
        setNext(page.next);
        setError(null);
      })
      .catch((e: Error) => setError(e.message));
  };
  useEffect(() => load(null), [unit, since, until, runId, refreshKey, changes]);

  return (
    <section class="panel" aria-labelledby="journal-title">
      <h2 id="journal-title">Journal</h2>
      <div class="filters">
        <label>
          Unit{" "}
          <select value={unit} onChange={(e) => setUnit(e.currentTarget.value)}>
            <option value="">All units</option>
            {app.units.value.map((u) => (
              <option key={u.id} value={u.id}>
                {u.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          From <input type="datetime-local" value={since} onChange={(e) => setSince(e.currentTarget.value)} />
        </label>
        <label>
          To <input type="datetime-local" value={until} onChange={(e) => setUntil(e.currentTarget.value)} />
        </label>
        <label>
          Run id <input type="text" value={runId} onChange={(e) => setRunId(e.currentTarget.value)} />
        </label>
      </div>
      {error && (
        <p class="error-text" role="alert">
          {error}
        </p>
      )}
      {entries === null ? (
        <Spinner label="Loading the journal…" />
      ) : entries.length === 0 ? (
        <p class="muted">No alarm transitions match.</p>
      ) : (
        <table class="table" data-testid="alarm-journal">
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Unit</th>
              <th scope="col">Alarm</th>
              <th scope="col">State</th>
              <th scope="col">Cause</th>
              <th scope="col">Who</th>
              <th scope="col">Comment</th>
              <th scope="col">Value</th>
            </tr>
          </thead>
          <tbody>
            {entries.map((e) => (
              <tr key={e.id} data-state={e.state} data-cause={e.cause}>
                <td>{formatDateTime(e.time)}</td>
                <td>{app.units.value.find((u) => u.id === e.unit_id)?.name ?? e.unit_id}</td>
                <td>
                  <span class={`prio prio-${e.priority}`}>{e.priority}</span> {e.name}
                  {e.run_id && (
                    <div class="small">
                      <a href={href({ name: "run", id: e.run_id })}>run</a>
                    </div>
                  )}
                </td>
                <td>
                  <span class={`alarm-state alarm-state-${e.state}`}>{STATE_LABELS[e.state] ?? e.state}</span>
                </td>
                <td>{e.cause.replace(/_/g, " ")}</td>
                <td>{e.user ?? "–"}</td>
                <td>{e.comment ?? ""}</td>
                <td class="num">{formatAlarmValue(e.value)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {next !== null && (
        <button type="button" class="btn" onClick={() => load(next)}>
          Older transitions
        </button>
      )}
    </section>
  );
}
