// The audit trail for admins: filter by user, unit, run, action and time, page back through it,
// and export the filtered trail as CSV.

import { useEffect, useState } from "preact/hooks";
import { useApp } from "../state/app";
import { Spinner } from "../components/bits";
import { formatDateTime } from "../lib/format";
import { auditCsvUrl, localInputToEpoch, searchAudit, type AuditEntry, type AuditFilter } from "../lib/regulated";

const PAGE = 100;
const ACTIONS = ["login", "control", "method", "method library create", "method library version", "signature", "user add", "user change", "alarm ack"];

interface Form {
  user: string;
  unit_id: string;
  run_id: string;
  action: string;
  since: string;
  until: string;
}

const EMPTY: Form = { user: "", unit_id: "", run_id: "", action: "", since: "", until: "" };

function toFilter(f: Form): AuditFilter {
  return {
    user: f.user.trim(),
    unit_id: f.unit_id,
    run_id: f.run_id.trim(),
    action: f.action.trim(),
    since: localInputToEpoch(f.since),
    until: localInputToEpoch(f.until),
  };
}

export function AuditView() {
  const app = useApp();
  const [form, setForm] = useState<Form>(EMPTY);
  const [filter, setFilter] = useState<AuditFilter>({});
  const [items, setItems] = useState<AuditEntry[] | null>(null);
  const [next, setNext] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = (f: AuditFilter, cursor: number | null) => {
    setError(null);
    searchAudit(app.api, { ...f, cursor, limit: PAGE })
      .then((page) => {
        setItems((old) => (cursor === null ? page.items : [...(old ?? []), ...page.items]));
        setNext(page.next);
      })
      .catch((e: Error) => setError(e.message));
  };
  const isAdmin = app.user.value?.role === "admin";
  useEffect(() => {
    if (isAdmin) load(filter, null);
  }, [filter, isAdmin]);

  if (!isAdmin)
    return (
      <section class="panel">
        <h1>Audit trail</h1>
        <p>The audit trail is for admins.</p>
      </section>
    );

  const set = (key: keyof Form) => (e: Event) => setForm({ ...form, [key]: (e.target as HTMLInputElement).value });
  const field = (key: keyof Form, label: string) => (
    <label>
      {label} <input type="text" value={form[key]} onInput={set(key)} />
    </label>
  );
  const when = (key: "since" | "until", label: string) => (
    <label>
      {label} <input type="datetime-local" value={form[key]} onInput={set(key)} />
    </label>
  );

  return (
    <div class="audit-view">
      <section class="panel" aria-labelledby="audit-title">
        <h1 id="audit-title">Audit trail</h1>
        <form
          class="filters"
          onSubmit={(e) => {
            e.preventDefault();
            setFilter(toFilter(form));
          }}
        >
          {field("user", "User")}
          <label>
            Unit{" "}
            <select value={form.unit_id} onChange={(e) => setForm({ ...form, unit_id: (e.target as HTMLSelectElement).value })}>
              <option value="">All units</option>
              {app.units.value.map((u) => (
                <option key={u.id} value={u.id}>
                  {u.name} ({u.id})
                </option>
              ))}
            </select>
          </label>
          {field("run_id", "Run id")}
          <label>
            Action <input type="text" list="audit-actions" value={form.action} onInput={set("action")} />
          </label>
          <datalist id="audit-actions">
            {ACTIONS.map((a) => (
              <option key={a} value={a} />
            ))}
          </datalist>
          {when("since", "From (local time)")}
          {when("until", "Until (local time)")}
          <button type="submit" class="btn btn-primary">
            Search
          </button>
          <button
            type="button"
            class="btn"
            onClick={() => {
              setForm(EMPTY);
              setFilter({});
            }}
          >
            Clear
          </button>
          <a class="btn" href={auditCsvUrl(filter)} download data-testid="audit-csv">
            Export CSV
          </a>
        </form>
        {error ? (
          <p class="error-text" role="alert">
            {error}
          </p>
        ) : !items ? (
          <Spinner label="Loading the audit trail…" />
        ) : items.length === 0 ? (
          <p class="muted">No entries match.</p>
        ) : (
          <AuditTable items={items} />
        )}
        {next !== null && (
          <button type="button" class="btn" onClick={() => load(filter, next)}>
            Older entries
          </button>
        )}
      </section>
    </div>
  );
}

function detail(entry: AuditEntry): string {
  const s = entry.new === null || entry.new === undefined ? "" : JSON.stringify(entry.new);
  return s.length > 300 ? `${s.slice(0, 300)}…` : s;
}

function AuditTable({ items }: { items: AuditEntry[] }) {
  return (
    <div class="table-wrap">
      <table class="table table-compact" data-testid="audit-table">
        <thead>
          <tr>
            <th scope="col">#</th>
            <th scope="col">Time</th>
            <th scope="col">User</th>
            <th scope="col">Action</th>
            <th scope="col">Unit</th>
            <th scope="col">Run</th>
            <th scope="col">Detail</th>
          </tr>
        </thead>
        <tbody>
          {items.map((e) => (
            <tr key={e.id} data-action={e.action}>
              <td class="num">{e.id}</td>
              <td>{formatDateTime(e.time)}</td>
              <td>{e.user ?? "–"}</td>
              <td>{e.action}</td>
              <td class="mono">{e.unit_id ?? "–"}</td>
              <td class="mono">{e.run_id ?? "–"}</td>
              <td class="mono small audit-detail">{detail(e)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
