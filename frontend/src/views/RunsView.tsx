import { useEffect, useState } from "preact/hooks";
import { useApp } from "../state/app";
import { href } from "../state/route";
import { Spinner } from "../components/bits";
import { RunsTable } from "./DashboardView";
import type { RunSummary } from "../types";

const PAGE = 20;

export function RunsView({ q, unit }: { q: string; unit: string }) {
  const app = useApp();
  const [text, setText] = useState(q);
  const [unitSel, setUnitSel] = useState(unit);
  // cursors[i] is the cursor of page i (null for the first page)
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [page, setPage] = useState(0);
  const [items, setItems] = useState<RunSummary[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    setCursors([null]);
    setPage(0);
    setText(q);
    setUnitSel(unit);
  }, [q, unit]);

  useEffect(() => {
    let live = true;
    setItems(null);
    app.api
      .runs({ q, unit_id: unit || undefined, cursor: cursors[page] ?? null, limit: PAGE })
      .then((p) => {
        if (!live) return;
        setItems(p.items);
        setNext(p.next);
        setError(null);
      })
      .catch((e: Error) => live && setError(e.message));
    return () => {
      live = false;
    };
  }, [q, unit, page, cursors]);

  const search = (e: Event) => {
    e.preventDefault();
    location.hash = href({ name: "runs", q: text.trim(), unit: unitSel });
  };

  return (
    <section class="panel">
      <h1>Run history</h1>
      <form class="filters" role="search" onSubmit={search}>
        <label>
          Search{" "}
          <input type="search" name="q" value={text} placeholder="unit, run id, batch, method text" onInput={(e) => setText(e.currentTarget.value)} />
        </label>
        <label>
          Unit{" "}
          <select value={unitSel} onChange={(e) => setUnitSel(e.currentTarget.value)}>
            <option value="">All units</option>
            {app.units.value.map((u) => (
              <option key={u.id} value={u.id}>
                {u.name}
              </option>
            ))}
          </select>
        </label>
        <button type="submit" class="btn">
          Search
        </button>
      </form>
      {error && (
        <p class="error-text" role="alert">
          {error}
        </p>
      )}
      {!items ? !error && <Spinner /> : items.length === 0 ? <p class="muted">No runs match.</p> : <RunsTable runs={items} />}
      <nav class="pager" aria-label="Pages">
        <button type="button" class="btn btn-small" disabled={page === 0} onClick={() => setPage(page - 1)}>
          ← Newer
        </button>
        <span class="small muted">Page {page + 1}</span>
        <button
          type="button"
          class="btn btn-small"
          disabled={!next}
          onClick={() => {
            const c = cursors.slice(0, page + 1);
            c.push(next);
            setCursors(c);
            setPage(page + 1);
          }}
        >
          Older →
        </button>
      </nav>
    </section>
  );
}
