// One library method: its versions with state, author and signatures; sign a version (password
// every time); compare two versions; add a version; load a version onto a unit.

import { useEffect, useState } from "preact/hooks";
import { useApp } from "../state/app";
import { href } from "../state/route";
import { Spinner } from "../components/bits";
import { HighlightedCode } from "../components/HighlightedCode";
import { MethodDiff } from "../components/MethodDiff";
import { SignDialog, SignatureLine } from "../components/SignDialog";
import { formatDateTime } from "../lib/format";
import {
  MEANING_LABEL,
  STATE_LABEL,
  addVersion,
  calledNames,
  getMethod,
  loadOntoUnit,
  signableMeanings,
  stateClass,
  type LibraryMethod,
  type LibraryVersion,
  type Meaning,
} from "../lib/regulated";

export function LibraryMethodView({ id }: { id: string }) {
  const app = useApp();
  const [method, setMethod] = useState<LibraryMethod | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [shown, setShown] = useState<number | null>(null);
  const [signing, setSigning] = useState<{ v: LibraryVersion; meaning: Meaning } | null>(null);

  const reload = () =>
    getMethod(app.api, Number(id))
      .then(setMethod)
      .catch((e: Error) => setError(e.message));
  useEffect(() => void reload(), [id]);

  if (error)
    return (
      <section class="panel">
        <h1>Method {id}</h1>
        <p class="error-text" role="alert">
          {error}
        </p>
        <a href={href({ name: "methods" })}>Back to the methods</a>
      </section>
    );
  if (!method) return <Spinner label="Loading method…" />;
  const versions = method.versions;
  const latest = versions[versions.length - 1];
  const current = versions.find((v) => v.version === shown) ?? latest;
  const user = app.user.value;
  const canOperate = user?.role === "operator" || user?.role === "admin";

  return (
    <div class="library-method" data-testid="library-method">
      <div class="unit-head">
        <h1>Method {method.name}</h1>
        <dl class="facts facts-inline">
          <dt>Created</dt>
          <dd>{formatDateTime(method.created)}</dd>
          <dt>By</dt>
          <dd>{method.created_by}</dd>
          <dt>Versions</dt>
          <dd>{versions.length}</dd>
        </dl>
        <a class="btn" href={href({ name: "methods" })}>
          All methods
        </a>
      </div>
      <section class="panel" aria-labelledby="versions-title">
        <h2 id="versions-title">Versions</h2>
        <div class="table-wrap">
          <table class="table" data-testid="versions-table">
            <thead>
              <tr>
                <th scope="col">Version</th>
                <th scope="col">State</th>
                <th scope="col">Author</th>
                <th scope="col">Created</th>
                <th scope="col">Signatures</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {[...versions].reverse().map((v) => (
                <VersionRow
                  key={v.version}
                  v={v}
                  meanings={user ? signableMeanings(v, user.name, user.role) : []}
                  onShow={() => setShown(v.version)}
                  onSign={(meaning) => setSigning({ v, meaning })}
                />
              ))}
            </tbody>
          </table>
        </div>
      </section>
      {current && (
        <section class="panel" aria-labelledby="text-title">
          <h2 id="text-title">
            Version {current.version} <span class={stateClass(current.state)}>{STATE_LABEL[current.state]}</span>
          </h2>
          <p class="small muted mono">SHA-256 {current.sha256}</p>
          <HighlightedCode text={current.text} commands={calledNames(current.text)} />
        </section>
      )}
      {versions.length > 1 && <CompareVersions versions={versions} />}
      {canOperate && latest && <LoadOntoUnit method={method} />}
      {canOperate && latest && <AddVersion methodId={method.id} latest={latest} onAdded={() => void reload()} />}
      {signing && (
        <SignDialog
          record={{ kind: "method_version", id: method.id, version: signing.v.version }}
          label={`method ${method.name} version ${signing.v.version}`}
          meaning={signing.meaning}
          onCancel={() => setSigning(null)}
          onSigned={(s) => {
            setSigning(null);
            app.notify("success", `Signed ${s.label} as ${s.meaning}`);
            void reload();
          }}
        />
      )}
    </div>
  );
}

interface RowProps {
  v: LibraryVersion;
  meanings: Meaning[];
  onShow: () => void;
  onSign: (m: Meaning) => void;
}

function VersionRow({ v, meanings, onShow, onSign }: RowProps) {
  return (
    <tr data-version={v.version} data-state={v.state}>
      <td class="num">{v.version}</td>
      <td>
        <span class={stateClass(v.state)} data-testid="version-state">
          {STATE_LABEL[v.state]}
        </span>
      </td>
      <td>{v.author}</td>
      <td>{formatDateTime(v.created)}</td>
      <td>
        {v.signatures.length === 0 ? (
          <span class="muted">none</span>
        ) : (
          <ul class="plain-list">
            {v.signatures.map((s) => (
              <li key={s.id}>
                <SignatureLine s={s} />
              </li>
            ))}
          </ul>
        )}
      </td>
      <td class="row-actions">
        <button type="button" class="btn btn-small" aria-label={`Show version ${v.version}`} onClick={onShow}>
          Show
        </button>
        {meanings.map((m) => (
          <button
            key={m}
            type="button"
            class="btn btn-small btn-primary"
            aria-label={`Sign as ${MEANING_LABEL[m]}, version ${v.version}`}
            onClick={() => onSign(m)}
          >
            Sign as {MEANING_LABEL[m]}
          </button>
        ))}
      </td>
    </tr>
  );
}

function CompareVersions({ versions }: { versions: LibraryVersion[] }) {
  const n = versions.length;
  const [from, setFrom] = useState(versions[n - 2]!.version);
  const [to, setTo] = useState(versions[n - 1]!.version);
  const a = versions.find((v) => v.version === from);
  const b = versions.find((v) => v.version === to);
  const pick = (value: number, set: (v: number) => void, label: string) => (
    <label>
      {label}
      <select value={String(value)} onChange={(e) => set(Number((e.target as HTMLSelectElement).value))}>
        {versions.map((v) => (
          <option key={v.version} value={String(v.version)}>
            {v.version} ({STATE_LABEL[v.state]})
          </option>
        ))}
      </select>
    </label>
  );
  return (
    <section class="panel" aria-labelledby="compare-title">
      <h2 id="compare-title">Compare versions</h2>
      <div class="filters">
        {pick(from, setFrom, "From version ")}
        {pick(to, setTo, "To version ")}
      </div>
      {a && b && <MethodDiff before={a.text} after={b.text} beforeLabel={`version ${a.version}`} afterLabel={`version ${b.version}`} />}
    </section>
  );
}

function LoadOntoUnit({ method }: { method: LibraryMethod }) {
  const app = useApp();
  const units = app.units.value;
  const [unit, setUnit] = useState("");
  const [version, setVersion] = useState(method.versions[method.versions.length - 1]!.version);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const unitId = unit || units[0]?.id || "";

  async function load(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await loadOntoUnit(app.api, unitId, method.id, version);
      const name = units.find((u) => u.id === unitId)?.name ?? unitId;
      app.notify("success", `${method.name} version ${version} loaded onto ${name}`);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <section class="panel" aria-labelledby="load-title">
      <h2 id="load-title">Load onto a unit</h2>
      {units.length === 0 ? (
        <p class="muted">No units to load onto.</p>
      ) : (
        <form class="filters" onSubmit={(e) => void load(e)}>
          <label>
            Unit{" "}
            <select value={unitId} onChange={(e) => setUnit((e.target as HTMLSelectElement).value)}>
              {units.map((u) => (
                <option key={u.id} value={u.id}>
                  {u.name} ({u.id})
                </option>
              ))}
            </select>
          </label>
          <label>
            Version{" "}
            <select value={String(version)} onChange={(e) => setVersion(Number((e.target as HTMLSelectElement).value))}>
              {method.versions.map((v) => (
                <option key={v.version} value={String(v.version)}>
                  {v.version} ({STATE_LABEL[v.state]})
                </option>
              ))}
            </select>
          </label>
          <button type="submit" class="btn" disabled={busy || !unitId}>
            Load onto unit
          </button>
          {error && (
            <p class="error-text" role="alert">
              {error}
            </p>
          )}
        </form>
      )}
    </section>
  );
}

function AddVersion({ methodId, latest, onAdded }: { methodId: number; latest: LibraryVersion; onAdded: () => void }) {
  const app = useApp();
  const [text, setText] = useState(latest.text);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => setText(latest.text), [latest.version]);

  async function save(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const v = await addVersion(app.api, methodId, text, latest.version);
      app.notify("success", `Version ${v.version} saved (draft)`);
      onAdded();
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <section class="panel" aria-labelledby="add-title">
      <h2 id="add-title">Add a version</h2>
      <form class="stack-form" onSubmit={(e) => void save(e)}>
        <label>
          Text of version {latest.version + 1} (starts from version {latest.version}; signed versions never change)
          <textarea class="mono" rows={10} value={text} onInput={(e) => setText((e.target as HTMLTextAreaElement).value)} />
        </label>
        {error && (
          <p class="error-text" role="alert">
            {error}
          </p>
        )}
        <div>
          <button type="submit" class="btn btn-primary" disabled={busy || text === latest.text}>
            Save as version {latest.version + 1}
          </button>
        </div>
      </form>
    </section>
  );
}
