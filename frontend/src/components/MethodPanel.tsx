// The method of a unit: edit with highlighting and as-you-type analysis, started/completed lines
// locked, and saves that never silently overwrite someone else's version.

import { useEffect, useRef, useState } from "preact/hooks";
import { effect, type Signal } from "@preact/signals";
import { useApp } from "../state/app";
import { ApiError } from "../api";
import type { Finding, MethodView, TagState, UodDescription } from "../types";
import { formatValue } from "../lib/format";
import type { EditorController } from "../lib/editor";
import { Dialog } from "./Dialog";
import { HighlightedCode } from "./HighlightedCode";
import { SimulatePanel } from "./SimulatePanel";

interface Props {
  unitId: string;
  method: Signal<MethodView | null>;
  commands: ReadonlySet<string>;
  canEdit: boolean;
  /** a run is in progress: started/completed lines are locked (a stopped unit's method is free) */
  active: boolean;
  /** the unit's UOD: completions, hover help and findings as you type come from it */
  uod?: UodDescription | null;
  /** the unit's live tags, for the current values in hover help */
  tags?: Signal<Map<string, TagState>>;
}

interface Conflict {
  theirs: MethodView;
}

function lineIdsOf(m: MethodView): (string | null)[] {
  const texts = m.text.split("\n");
  // Normally lines[] and text agree line for line; if not, keep ids only where texts match.
  return texts.map((t, i) => (m.lines[i] && m.lines[i]!.text === t ? m.lines[i]!.id : null));
}

export function MethodPanel({ unitId, method, commands, canEdit, active, uod, tags }: Props) {
  const app = useApp();
  const host = useRef<HTMLDivElement>(null);
  const editor = useRef<EditorController | null>(null);
  const base = useRef<MethodView | null>(null);
  const [dirty, setDirty] = useState(false);
  const [findings, setFindings] = useState<Finding[]>([]);
  const [checking, setChecking] = useState(false);
  const [saving, setSaving] = useState(false);
  const [newer, setNewer] = useState<MethodView | null>(null);
  const [conflict, setConflict] = useState<Conflict | null>(null);
  const [refused, setRefused] = useState<string | null>(null);
  const [loaded, setLoaded] = useState(false);
  const checkTimer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const checkAbort = useRef<AbortController | null>(null);
  const activeRef = useRef(active);
  activeRef.current = active;
  const uodRef = useRef(uod ?? null);
  uodRef.current = uod ?? null;
  const tagValue = (name: string): string | null => {
    const t = tags?.peek().get(name);
    return t ? formatValue(t.value, t.unit) : null;
  };
  const applyStates = (m: MethodView) => {
    if (activeRef.current) editor.current?.setLineStates(m.started, m.completed, m.failed);
    else editor.current?.setLineStates([], [], []);
  };

  const runCheck = (text: string) => {
    if (checkTimer.current) clearTimeout(checkTimer.current);
    checkTimer.current = setTimeout(async () => {
      checkAbort.current?.abort();
      const ctl = new AbortController();
      checkAbort.current = ctl;
      setChecking(true);
      try {
        const r = await app.api.checkMethod(unitId, text, ctl.signal);
        if (ctl.signal.aborted) return;
        setFindings(r.findings ?? []);
        editor.current?.setFindings(r.findings ?? []);
      } catch (e) {
        if (e instanceof DOMException && e.name === "AbortError") return;
      } finally {
        if (!ctl.signal.aborted) setChecking(false);
      }
    }, 400);
  };

  const loadServer = (m: MethodView) => {
    base.current = m;
    setNewer(null);
    setDirty(false);
    editor.current?.load(m.text, lineIdsOf(m));
    applyStates(m);
    runCheck(m.text);
  };

  // Create the editor (lazily loaded) once, with whatever method we have.
  useEffect(() => {
    let cancelled = false;
    const start = async () => {
      let m = method.peek();
      if (!m) {
        try {
          m = await app.api.method(unitId);
          if (!method.peek()) method.value = m;
        } catch {
          m = { version: 0, text: "", lines: [], started: [], completed: [], failed: [] };
        }
      }
      const mod = await import("../lib/editor");
      if (cancelled || !host.current) return;
      base.current = m;
      editor.current = mod.createEditor(host.current, {
        text: m.text,
        lineIds: lineIdsOf(m),
        commands,
        readOnly: !canEdit,
        label: "Method (P-code)",
        assist: { uod: () => uodRef.current, mode: "method", value: tagValue },
        onChange: (text) => {
          setRefused(null);
          setDirty(text !== base.current?.text);
          runCheck(text);
        },
        onRefused: (msg) => setRefused(msg),
      });
      applyStates(m);
      setLoaded(true);
      runCheck(m.text);
    };
    void start();
    return () => {
      cancelled = true;
      if (checkTimer.current) clearTimeout(checkTimer.current);
      checkAbort.current?.abort();
      editor.current?.destroy();
      editor.current = null;
    };
  }, [unitId]);

  // Follow the server's method: new versions load unless the operator is editing; line states always.
  useEffect(
    () =>
      effect(() => {
        const m = method.value;
        const ed = editor.current;
        if (!m || !ed || !loaded) return;
        const b = base.current;
        const editing = ed.text() !== (b?.text ?? "");
        if (!b || m.version !== b.version) {
          if (!editing) loadServer(m);
          else setNewer(m);
        } else {
          base.current = m;
          applyStates(m);
        }
      }),
    [loaded],
  );

  useEffect(() => {
    const m = method.peek() ?? base.current;
    if (m && loaded) applyStates(m);
  }, [active, loaded]);

  const save = async (expected: number) => {
    const ed = editor.current;
    if (!ed) return;
    setSaving(true);
    const text = ed.text();
    try {
      const r = await app.api.saveMethod(unitId, text, expected, ed.lineIds());
      const fresh = await app.api.method(unitId).catch(() => null);
      base.current = fresh && fresh.version === r.version ? fresh : { ...(base.current as MethodView), version: r.version, text };
      if (fresh && fresh.version === r.version && fresh.text !== text) loadServer(fresh);
      setDirty(false);
      setNewer(null);
      setConflict(null);
      setFindings(r.findings ?? []);
      ed.setFindings(r.findings ?? []);
      app.notify("success", `Method saved (version ${r.version})`);
    } catch (e) {
      if (e instanceof ApiError && e.status === 409) {
        try {
          const theirs = await app.api.method(unitId);
          setConflict({ theirs });
        } catch {
          app.notify("error", "Someone else saved the method; reload it to see their version.");
        }
      } else if (e instanceof ApiError && e.status === 422) {
        const body = e.body as { findings?: Finding[] } | null;
        if (body?.findings) {
          setFindings(body.findings);
          ed.setFindings(body.findings);
        }
        app.notify("error", `The engine refused the edit: ${e.message}`);
      } else app.notify("error", `Save failed: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      setSaving(false);
    }
  };

  const counts = { error: 0, warning: 0, info: 0 };
  for (const f of findings) counts[f.severity]++;
  const version = base.current?.version;

  return (
    <div class="method-panel">
      <div class="toolbar">
        <span class="muted small" data-testid="method-version">
          Version {version ?? "–"}
          {dirty && <strong class="dirty"> · unsaved changes</strong>}
        </span>
        <span class="spacer" />
        {canEdit && (
          <>
            <button type="button" class="btn btn-small" disabled={!dirty || saving} onClick={() => base.current && loadServer(method.peek() ?? base.current)}>
              Discard changes
            </button>
            <button type="button" class="btn btn-primary btn-small" disabled={!dirty || saving} onClick={() => void save(base.current?.version ?? 0)}>
              {saving ? "Saving…" : "Save method"}
            </button>
          </>
        )}
      </div>
      {newer && (
        <div class="banner banner-info" role="status">
          Version {newer.version} was saved by someone else while you were editing.{" "}
          <button type="button" class="btn btn-small" onClick={() => loadServer(newer)}>
            Load it (discard mine)
          </button>
        </div>
      )}
      {refused && (
        <p class="error-text small" role="alert">
          {refused}
        </p>
      )}
      <div ref={host} class="editor-host" data-testid="method-editor">
        {!loaded && <p class="muted">Loading editor…</p>}
      </div>
      <p class="legend small">
        <span class="swatch sw-started" /> running (locked) <span class="swatch sw-completed" /> completed (locked) <span class="swatch sw-failed" /> failed
        <span class="keys">· Ctrl-Space: suggestions · Ctrl-.: apply the suggested fix</span>
      </p>
      <SimulatePanel unitId={unitId} text={() => editor.current?.text() ?? method.peek()?.text ?? ""} uod={uod} />
      <div class="findings" aria-live="polite" data-testid="findings">
        <p class="small">
          {checking ? "Checking…" : findings.length === 0 ? "No problems found." : `${plural(counts.error, "error")}, ${plural(counts.warning, "warning")}, ${plural(counts.info, "note")}`}
        </p>
        {findings.length > 0 && (
          <ul>
            {findings.map((f, i) => (
              <li key={i} class={`finding sev-${f.severity}`}>
                <span class={`badge lv-${f.severity}`}>{f.severity}</span> Line {f.line}: {f.message}
                {f.suggestion ? ` (did you mean "${f.suggestion}"?)` : ""}
              </li>
            ))}
          </ul>
        )}
      </div>
      {conflict && (
        <Dialog
          title="Someone else changed the method"
          wide
          onClose={() => setConflict(null)}
          actions={
            <>
              <button type="button" class="btn" data-autofocus onClick={() => setConflict(null)}>
                Keep editing
              </button>
              <button
                type="button"
                class="btn"
                onClick={() => {
                  loadServer(conflict.theirs);
                  setConflict(null);
                }}
              >
                Load their version (discard mine)
              </button>
              <button type="button" class="btn btn-danger" onClick={() => void save(conflict.theirs.version)}>
                Overwrite with mine
              </button>
            </>
          }
        >
          <p>
            Your edit was based on version {base.current?.version}; version {conflict.theirs.version} is now current. Their version:
          </p>
          <HighlightedCode text={conflict.theirs.text} commands={commands} />
        </Dialog>
      )}
    </div>
  );
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}
