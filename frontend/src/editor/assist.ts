// The editor's help from the unit: completions (completions.ts), hover help, and diagnostics as
// you type (quicklint.ts at once, the engine's analyzer when it answers) with did-you-mean quick
// fixes applied by one key (Ctrl-. / Cmd-.). Shared by the method editor and the manual-command box.

import { StateEffect, StateField, type EditorState, type Extension, type Text } from "@codemirror/state";
import { EditorView, hoverTooltip, keymap, type Tooltip } from "@codemirror/view";
import { acceptCompletion, autocompletion, type Completion, type CompletionContext, type CompletionResult } from "@codemirror/autocomplete";
import { forEachDiagnostic, linter, type Action, type Diagnostic } from "@codemirror/lint";
import type { Finding, TagDescription, UodDescription } from "../types";
import { BUILTIN_HELP, commandHint, complete, type ItemKind, type Mode } from "./completions";
import { QUICK_CODES, lintContext, quickLint, type LintContext } from "./quicklint";
import { tokenizeLine } from "../lib/pcode";

export interface AssistOptions {
  /** the unit's UOD description; null while it is not known (then nothing is offered) */
  uod: () => UodDescription | null;
  mode: Mode;
  /** a tag's current value as shown to the operator, for hover help */
  value?: (tag: string) => string | null;
}

const CM_TYPE: Record<ItemKind, string> = {
  instruction: "keyword",
  command: "function",
  tag: "variable",
  operator: "operator",
  value: "enum",
  unit: "type",
  macro: "method",
  block: "namespace",
};

export function completionSource(opts: AssistOptions) {
  return (context: CompletionContext): CompletionResult | null => {
    const uod = opts.uod();
    if (!uod) return null;
    const line = context.state.doc.lineAt(context.pos);
    const col = context.pos - line.from + 1;
    const result = complete(uod, context.state.doc.toString(), line.number, col, opts.mode);
    if (result.items.length === 0) return null;
    // Offered unasked only once something is typed (or right after a colon or a number): an
    // empty line does not pop a list up, Ctrl-Space asks anywhere.
    if (!context.explicit && result.from === result.to && !/[:=<>!] ?$|\d $|\S $/.test(line.text.slice(0, col - 1))) return null;
    const options: Completion[] = result.items.map((item) => ({
      label: item.label,
      detail: item.detail,
      type: CM_TYPE[item.kind],
      apply: item.apply,
      info: infoFor(uod, item.kind, item.label),
    }));
    return { from: line.from + result.from - 1, to: context.pos, options, filter: false };
  };
}

function infoFor(uod: UodDescription, kind: ItemKind, label: string): string | undefined {
  if (kind === "instruction") return BUILTIN_HELP[label]?.help;
  if (kind === "command") return (uod.commands ?? []).find((c) => c.name === label)?.description || undefined;
  if (kind === "tag") return (uod.tags ?? []).find((t) => t.name === label)?.description || undefined;
  return undefined;
}

/** The hover help for the word at `pos`: an instruction, a UOD command or a tag. */
export function hoverText(uod: UodDescription, state: EditorState, pos: number, value?: (tag: string) => string | null): { from: number; to: number; text: string[] } | null {
  const line = state.doc.lineAt(pos);
  const commands = new Set((uod.commands ?? []).map((c) => c.name));
  const offset = pos - line.from;
  const token = tokenizeLine(line.text, { commands }).find((t) => t.from <= offset && offset <= t.to && t.to > t.from);
  if (!token) return null;
  const word = line.text.slice(token.from, token.to);
  const from = line.from + token.from;
  const to = line.from + token.to;
  if (token.type === "keyword") {
    const spec = BUILTIN_HELP[word];
    return spec ? { from, to, text: [spec.signature, spec.help] } : null;
  }
  if (token.type === "command") {
    const c = (uod.commands ?? []).find((x) => x.name === word);
    if (!c) return null;
    const lines = [`${c.name} (command): ${commandHint(c)}`];
    if (c.description) lines.push(c.description);
    const tag = (uod.tags ?? []).find((t) => t.name === word);
    if (tag) lines.push(...tagLines(tag, value));
    return { from, to, text: lines };
  }
  if (token.type === "tag" || token.type === "argument") {
    const name = word.trim();
    const tag = (uod.tags ?? []).find((t) => t.name === name);
    return tag ? { from, to, text: tagLines(tag, value) } : null;
  }
  return null;
}

function tagLines(tag: TagDescription, value?: (tag: string) => string | null): string[] {
  const out = [`${tag.name} (tag, ${tag.kind}${tag.unit ? `, ${tag.unit}` : ""})`];
  if (tag.description) out.push(tag.description);
  if (tag.choices?.length) out.push(`One of ${tag.choices.join(", ")}`);
  const now = value?.(tag.name);
  if (now != null) out.push(`Now: ${now}`);
  return out;
}

function hover(opts: AssistOptions): Extension {
  return hoverTooltip((view, pos): Tooltip | null => {
    const uod = opts.uod();
    if (!uod) return null;
    const found = hoverText(uod, view.state, pos, opts.value);
    if (!found) return null;
    return {
      pos: found.from,
      end: found.to,
      above: true,
      create: () => {
        const dom = document.createElement("div");
        dom.className = "cm-pcode-help";
        dom.setAttribute("role", "tooltip");
        found.text.forEach((t, i) => {
          const p = document.createElement(i === 0 ? "strong" : "div");
          p.textContent = t;
          dom.appendChild(p);
        });
        return { dom };
      },
    };
  });
}

// -- diagnostics ------------------------------------------------------------------------------

/** The engine analyzer's findings, as diagnostics mapped through later edits. */
const setServer = StateEffect.define<Diagnostic[]>();

/** A diagnostic on a line edited since the engine looked at it is stale: dropped at once. */
const serverField = StateField.define<Diagnostic[]>({
  create: () => [],
  update(diags, tr) {
    for (const e of tr.effects) if (e.is(setServer)) return e.value;
    if (!tr.docChanged || diags.length === 0) return diags;
    const touched: [number, number][] = [];
    tr.changes.iterChangedRanges((fromA, toA) => touched.push([tr.startState.doc.lineAt(fromA).from, tr.startState.doc.lineAt(toA).to]));
    return diags
      .filter((d) => !touched.some(([a, b]) => d.from <= b && d.to >= a))
      .map((d) => ({ ...d, from: tr.changes.mapPos(d.from), to: tr.changes.mapPos(d.to) }));
  },
});

export function quickFix(suggestion: string): Action {
  return {
    name: `Use "${suggestion}"`,
    apply: (view, from, to) => view.dispatch({ changes: { from, to, insert: suggestion }, selection: { anchor: from + suggestion.length } }),
  };
}

/** The engine's (or the quick check's) findings as editor diagnostics, each with its quick fix. */
export function findingsToDiagnostics(doc: Text, findings: readonly Finding[]): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const f of findings) {
    if (f.line < 1 || f.line > doc.lines) continue;
    const line = doc.line(f.line);
    const from = Math.min(line.to, line.from + Math.max(0, (f.col_start ?? 1) - 1));
    let to = Math.min(line.to, line.from + Math.max(0, (f.col_end ?? 1) - 1));
    if (to <= from) to = line.to > from ? line.to : from;
    out.push({
      from,
      to,
      severity: f.severity,
      message: f.suggestion ? `${f.message} (did you mean "${f.suggestion}"?)` : f.message,
      source: f.code || undefined,
      actions: f.suggestion ? [quickFix(f.suggestion)] : undefined,
    });
  }
  return out;
}

/** The effect that hands the engine's findings (for the current text) to the editor. */
export function serverFindingsEffect(state: EditorState, findings: readonly Finding[]): StateEffect<Diagnostic[]> {
  return setServer.of(findingsToDiagnostics(state.doc, findings));
}

/** The local findings and the engine's, without the codes the local linter decides itself (it
 * applies the analyzer's own rule to every line, so the engine's would only repeat or lag). */
export function combinedDiagnostics(state: EditorState, ctx: LintContext | null, mode: Mode = "method"): Diagnostic[] {
  const server = state.field(serverField, false) ?? [];
  if (!ctx) return server;
  const local = findingsToDiagnostics(state.doc, quickLint(ctx, state.doc.toString(), { macros: mode === "method" }));
  return [...local, ...server.filter((d) => !(d.source && QUICK_CODES.has(d.source)))];
}

function diagnostics(opts: AssistOptions, delay: number): Extension {
  let cached: { uod: UodDescription; ctx: LintContext } | null = null;
  const ctxOf = (): LintContext | null => {
    const uod = opts.uod();
    if (!uod) return null;
    if (!cached || cached.uod !== uod) cached = { uod, ctx: lintContext(uod) };
    return cached.ctx;
  };
  return [
    serverField,
    linter((view) => combinedDiagnostics(view.state, ctxOf(), opts.mode), {
      delay,
      needsRefresh: (u) => u.transactions.some((tr) => tr.effects.some((e) => e.is(setServer))),
    }),
  ];
}

/** Apply the first quick fix of a diagnostic at the cursor (or else on the cursor's line). */
export function applyQuickFix(view: EditorView): boolean {
  const pos = view.state.selection.main.head;
  const line = view.state.doc.lineAt(pos);
  const hits: { d: Diagnostic; from: number; to: number; at: boolean }[] = [];
  forEachDiagnostic(view.state, (d, from, to) => {
    if (d.actions?.length && from >= line.from && to <= line.to) hits.push({ d, from, to, at: from <= pos && pos <= to });
  });
  const hit = hits.find((h) => h.at) ?? hits[0];
  const action = hit?.d.actions?.[0];
  if (!hit || !action) return false;
  action.apply(view, hit.from, hit.to);
  return true;
}

/** Everything the editor needs for help from the unit. `delay`: ms after typing before linting. */
export function assist(opts: AssistOptions, delay = 60): Extension {
  return [
    autocompletion({
      override: [completionSource(opts)],
      activateOnTyping: true,
      // "Name: " and an operator lead on to their argument's list; a finished word does not
      activateOnCompletion: (c) => typeof c.apply === "string" && c.apply.endsWith(" "),
      icons: true,
      closeOnBlur: true,
    }),
    keymap.of([
      { key: "Tab", run: acceptCompletion },
      { key: "Mod-.", run: applyQuickFix, preventDefault: true },
    ]),
    hover(opts),
    diagnostics(opts, delay),
    EditorView.theme({
      ".cm-pcode-help": { padding: "4px 8px", maxWidth: "28em", fontSize: "13px" },
      ".cm-pcode-help strong": { display: "block", fontFamily: "ui-monospace, monospace" },
    }),
  ];
}
