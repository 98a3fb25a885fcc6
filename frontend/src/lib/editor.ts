// The method editor on CodeMirror 6: P-code highlighting, analyzer findings as diagnostics, line
// ids that follow their lines through edits, and started/completed lines marked and locked; with
// `assist`, completions, hover help and findings as you type (../editor/assist.ts).
// Loaded on demand (it pulls in CodeMirror).

import { Annotation, EditorState, RangeSetBuilder, StateEffect, StateField, type Extension, type Text, type Transaction } from "@codemirror/state";
import { Decoration, EditorView, ViewPlugin, keymap, lineNumbers, highlightActiveLine, drawSelection, type DecorationSet, type ViewUpdate } from "@codemirror/view";
import { defaultKeymap, history, historyKeymap } from "@codemirror/commands";
import { indentUnit } from "@codemirror/language";
import { lintGutter, setDiagnostics } from "@codemirror/lint";
import { assist, findingsToDiagnostics, serverFindingsEffect, type AssistOptions } from "../editor/assist";
import { tokenizeLine } from "./pcode";
import { remapLineIds, violatedLock, type LineRange } from "./lineids";
import type { Finding } from "../types";

export interface EditorOptions {
  text: string;
  lineIds: (string | null)[];
  commands: ReadonlySet<string>;
  readOnly?: boolean;
  label: string;
  onChange?: (text: string) => void;
  onRefused?: (message: string) => void;
  /** completions, hover help and diagnostics as you type from the unit (editor/assist.ts) */
  assist?: AssistOptions;
}

export interface EditorController {
  /** Replace the whole text (a method from the server); not an edit by the operator. */
  load(text: string, lineIds: (string | null)[]): void;
  setLineStates(started: string[], completed: string[], failed: string[]): void;
  setFindings(findings: Finding[]): void;
  text(): string;
  lineIds(): (string | null)[];
  focus(): void;
  destroy(): void;
}

const remote = Annotation.define<boolean>();
const setIds = StateEffect.define<(string | null)[]>();

interface LineStates {
  started: ReadonlySet<string>;
  completed: ReadonlySet<string>;
  failed: ReadonlySet<string>;
}
const setStates = StateEffect.define<LineStates>();

function docLines(doc: Text): (n: number) => string {
  return (n) => doc.line(n).text;
}

function changedLineRanges(tr: Transaction): LineRange[] {
  const ranges: LineRange[] = [];
  tr.changes.iterChangedRanges((fromA, toA, fromB, toB) => {
    ranges.push({
      a0: tr.startState.doc.lineAt(fromA).number,
      a1: tr.startState.doc.lineAt(toA).number,
      b0: tr.state.doc.lineAt(fromB).number,
      b1: tr.state.doc.lineAt(toB).number,
    });
  });
  return ranges;
}

const idsField = StateField.define<(string | null)[]>({
  create: (state) => new Array(state.doc.lines).fill(null),
  update(ids, tr) {
    for (const e of tr.effects) if (e.is(setIds)) return e.value;
    if (!tr.docChanged) return ids;
    return remapLineIds(ids, docLines(tr.startState.doc), docLines(tr.state.doc), tr.state.doc.lines, changedLineRanges(tr));
  },
});

const statesField = StateField.define<LineStates>({
  create: () => ({ started: new Set(), completed: new Set(), failed: new Set() }),
  update(v, tr) {
    for (const e of tr.effects) if (e.is(setStates)) return e.value;
    return v;
  },
});

function lockedIds(s: LineStates): Set<string> {
  return new Set([...s.started, ...s.completed].filter((id) => !s.failed.has(id)));
}

function lockFilter(onRefused: (m: string) => void): Extension {
  return EditorState.transactionFilter.of((tr) => {
    if (!tr.docChanged || tr.annotation(remote)) return tr;
    const states = tr.startState.field(statesField);
    const locked = lockedIds(states);
    if (locked.size === 0) return tr;
    const oldIds = tr.startState.field(idsField);
    const newIds = remapLineIds(oldIds, docLines(tr.startState.doc), docLines(tr.state.doc), tr.state.doc.lines, changedLineRanges(tr));
    const bad = violatedLock(oldIds, docLines(tr.startState.doc), newIds, docLines(tr.state.doc), locked);
    if (!bad) return tr;
    const what = states.completed.has(bad.id) ? "has completed" : "has started";
    onRefused(`Line ${bad.line} ${what} and cannot be changed or removed.`);
    return [];
  });
}

const TOKEN_CLASS: Record<string, string> = {
  threshold: "pc-threshold",
  keyword: "pc-keyword",
  command: "pc-command",
  instruction: "pc-unknown",
  argument: "pc-arg",
  tag: "pc-tag",
  operator: "pc-op",
  number: "pc-number",
  unit: "pc-unit",
  text: "pc-text",
  comment: "pc-comment",
  badIndent: "pc-bad-indent",
};
/** One mark decoration per token type, built once (immutable). */
const TOKEN_MARK: Readonly<Record<string, Decoration>> = Object.fromEntries(
  Object.entries(TOKEN_CLASS).map(([type, cls]) => [type, Decoration.mark({ class: cls })]),
);

function highlighter(commands: ReadonlySet<string>): Extension {
  const build = (view: EditorView): DecorationSet => {
    const b = new RangeSetBuilder<Decoration>();
    const ids = view.state.field(idsField);
    const states = view.state.field(statesField);
    for (const { from, to } of view.visibleRanges) {
      let pos = from;
      while (pos <= to) {
        const line = view.state.doc.lineAt(pos);
        const id = ids[line.number - 1];
        const st = id == null ? null : states.failed.has(id) ? "failed" : states.completed.has(id) ? "completed" : states.started.has(id) ? "started" : null;
        if (st) {
          b.add(
            line.from,
            line.from,
            Decoration.line({
              class: `cm-line-${st}`,
              attributes: { "data-state": st, title: st === "failed" ? "Failed: fix this line" : `${st === "completed" ? "Completed" : "Running"}: locked` },
            }),
          );
        }
        for (const t of tokenizeLine(line.text, { commands })) {
          const deco = TOKEN_MARK[t.type];
          if (deco && t.to > t.from) b.add(line.from + t.from, line.from + t.to, deco);
        }
        pos = line.to + 1;
      }
    }
    return b.finish();
  };
  return ViewPlugin.fromClass(
    class {
      decorations: DecorationSet;
      constructor(view: EditorView) {
        this.decorations = build(view);
      }
      update(u: ViewUpdate) {
        const effects = u.transactions.some((tr) => tr.effects.some((e) => e.is(setStates) || e.is(setIds)));
        if (u.docChanged || u.viewportChanged || effects) this.decorations = build(u.view);
      }
    },
    { decorations: (v) => v.decorations },
  );
}

export { findingsToDiagnostics };

const theme = EditorView.theme({
  "&": { fontSize: "14px", border: "1px solid #8a94a3", borderRadius: "4px", background: "#fff" },
  "&.cm-focused": { outline: "3px solid #1a56db", outlineOffset: "1px" },
  ".cm-content": { fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace", minHeight: "12em" },
  ".cm-scroller": { maxHeight: "26em", overflow: "auto" },
  ".cm-gutters": { background: "#f3f5f8", color: "#4a5563", borderRight: "1px solid #d5dae1" },
});

/** The editor's state (no DOM needed): tests drive it with transactions. */
export function createMethodState(opts: EditorOptions): EditorState {
  const onRefused = opts.onRefused ?? (() => {});
  return EditorState.create({
    doc: opts.text,
    extensions: [
      idsField.init(() => padIds(opts.lineIds, opts.text.split("\n").length)),
      statesField,
      lineNumbers(),
      lintGutter(),
      opts.assist ? assist(opts.assist) : [],
      history(),
      drawSelection(),
      highlightActiveLine(),
      EditorView.lineWrapping,
      indentUnit.of("    "),
      EditorState.tabSize.of(4),
      keymap.of([...defaultKeymap, ...historyKeymap]),
      highlighter(opts.commands),
      lockFilter(onRefused),
      EditorState.readOnly.of(!!opts.readOnly),
      EditorView.editable.of(!opts.readOnly),
      EditorView.contentAttributes.of({ "aria-label": opts.label, "aria-multiline": "true", tabindex: "0" }),
      EditorView.updateListener.of((u) => {
        if (u.docChanged && !u.transactions.every((tr) => tr.annotation(remote))) opts.onChange?.(u.state.doc.toString());
      }),
      theme,
    ],
  });
}

/** Line states (started/completed/failed ids) as an effect to dispatch. */
export function lineStatesEffect(started: string[], completed: string[], failed: string[]): StateEffect<LineStates> {
  return setStates.of({ started: new Set(started), completed: new Set(completed), failed: new Set(failed) });
}

export function lineIdsOf(state: EditorState): (string | null)[] {
  return state.field(idsField).slice();
}

export function createEditor(parent: HTMLElement, opts: EditorOptions): EditorController {
  const view = new EditorView({ state: createMethodState(opts), parent });
  return {
    load(text, lineIds) {
      view.dispatch({
        changes: { from: 0, to: view.state.doc.length, insert: text },
        effects: setIds.of(padIds(lineIds, text.split("\n").length)),
        annotations: remote.of(true),
      });
    },
    setLineStates(started, completed, failed) {
      view.dispatch({ effects: lineStatesEffect(started, completed, failed) });
    },
    setFindings(findings) {
      if (opts.assist) view.dispatch({ effects: serverFindingsEffect(view.state, findings) });
      else view.dispatch(setDiagnostics(view.state, findingsToDiagnostics(view.state.doc, findings)));
    },
    text: () => view.state.doc.toString(),
    lineIds: () => lineIdsOf(view.state),
    focus: () => view.focus(),
    destroy: () => view.destroy(),
  };
}

function padIds(ids: (string | null)[], n: number): (string | null)[] {
  const out = ids.slice(0, n);
  while (out.length < n) out.push(null);
  return out;
}
