// The method library: every method with its newest and approved version, and a new method.

import { useEffect, useState } from "preact/hooks";
import { useApp } from "../state/app";
import { href } from "../state/route";
import { Spinner } from "../components/bits";
import { formatDateTime } from "../lib/format";
import { STATE_LABEL, createMethod, listMethods, stateClass, type LibraryMethodSummary } from "../lib/regulated";

export function MethodsView() {
  const app = useApp();
  const [methods, setMethods] = useState<LibraryMethodSummary[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const canAuthor = app.user.value?.role !== "viewer";

  useEffect(() => {
    listMethods(app.api)
      .then(setMethods)
      .catch((e: Error) => setError(e.message));
  }, []);

  return (
    <div class="methods-view">
      <section class="panel" aria-labelledby="methods-title">
        <h1 id="methods-title">Methods</h1>
        <p class="small muted">
          The method library: each version is a record with a state (draft, reviewed, approved, retired), an author and
          its electronic signatures. Open a method to see its versions, compare them, sign, or load one onto a unit.
        </p>
        {error ? (
          <p class="error-text" role="alert">
            {error}
          </p>
        ) : !methods ? (
          <Spinner label="Loading methods…" />
        ) : methods.length === 0 ? (
          <p class="muted">No methods in the library yet.</p>
        ) : (
          <div class="table-wrap">
            <table class="table" data-testid="methods-table">
              <thead>
                <tr>
                  <th scope="col">Method</th>
                  <th scope="col">Newest version</th>
                  <th scope="col">State</th>
                  <th scope="col">Approved version</th>
                  <th scope="col">Updated</th>
                  <th scope="col">Created by</th>
                </tr>
              </thead>
              <tbody>
                {methods.map((m) => (
                  <tr key={m.id} data-method={m.name}>
                    <td>
                      <a href={href({ name: "method", id: String(m.id) })}>{m.name}</a>
                    </td>
                    <td class="num">{m.latest_version}</td>
                    <td>
                      <span class={stateClass(m.latest_state)}>{STATE_LABEL[m.latest_state] ?? m.latest_state}</span>
                    </td>
                    <td class="num">{m.approved_version ?? "–"}</td>
                    <td>{formatDateTime(m.updated)}</td>
                    <td>{m.created_by}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
      {canAuthor && <NewMethod />}
    </div>
  );
}

function NewMethod() {
  const app = useApp();
  const [name, setName] = useState("");
  const [text, setText] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: Event) {
    e.preventDefault();
    if (!name.trim()) {
      setError("Give the method a name.");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const m = await createMethod(app.api, name.trim(), text);
      app.notify("success", `Method ${m.name} created as version 1 (draft)`);
      location.hash = href({ name: "method", id: String(m.id) });
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <section class="panel" aria-labelledby="new-method-title">
      <h2 id="new-method-title">New method</h2>
      <form class="stack-form" onSubmit={(e) => void submit(e)}>
        <label>
          Name
          <input type="text" value={name} maxLength={200} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
        </label>
        <label>
          Method text (P-code)
          <textarea class="mono" rows={8} value={text} onInput={(e) => setText((e.target as HTMLTextAreaElement).value)} />
        </label>
        {error && (
          <p class="error-text" role="alert">
            {error}
          </p>
        )}
        <div>
          <button type="submit" class="btn btn-primary" disabled={busy}>
            Create version 1
          </button>
        </div>
      </form>
    </section>
  );
}
