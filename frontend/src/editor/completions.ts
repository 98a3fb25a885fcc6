// What the method editor and the manual-command box offer at the cursor, from the unit's UOD
// description and the method text alone (no language server). Pure functions: the editor wraps
// them in CodeMirror sources, and aggregator/api/completions.py implements the same rules for
// GET /api/units/{id}/method/completions; tests/fixtures/completions.json holds the cases both
// must answer alike.

import type { CommandDescription, TagDescription, UodDescription } from "../types";
import { unitsCompatibleWith } from "./unitFamilies";

export type ItemKind = "instruction" | "command" | "tag" | "operator" | "value" | "unit" | "macro" | "block";

export interface CompletionItem {
  label: string;
  kind: ItemKind;
  /** the argument hint or the unit, shown beside the label */
  detail: string;
  /** the text inserted (the label, plus ": " for a name that takes an argument) */
  apply: string;
}

export interface CompletionResult {
  /** 1-based columns of the text the chosen item replaces (to: the cursor) */
  from: number;
  to: number;
  items: CompletionItem[];
}

/** "method": the method editor; "inject": the unit view's manual-command box (Unpause works there). */
export type Mode = "method" | "inject";

interface BuiltinSpec {
  /** how it is written, shown as the hint */
  signature: string;
  /** "required" / "optional" / "none": does `Name: ` come with an argument */
  argument: "required" | "optional" | "none";
  help: string;
}

export const BUILTIN_HELP: Readonly<Record<string, BuiltinSpec>> = {
  Base: { signature: "Base: <unit>", argument: "required", help: "Unit of the following thresholds (time, or a volume the unit measures)." },
  Wait: { signature: "Wait: <n> s|min|h", argument: "required", help: "Holds this path for a duration; shows progress; can be forced." },
  Mark: { signature: "Mark: <text>", argument: "required", help: "Sets the Mark tag; an annotation in the run log and plot." },
  Info: { signature: "Info: <text>", argument: "required", help: "A line in the unit's log." },
  Warning: { signature: "Warning: <text>", argument: "required", help: "A warning in the unit's log." },
  Error: { signature: "Error: <text>", argument: "required", help: "An error in the unit's log (stops nothing)." },
  Pause: { signature: "Pause [: <duration>]", argument: "optional", help: "Paused: method and timelines stop, outputs go to their safe values." },
  Hold: { signature: "Hold [: <duration>]", argument: "optional", help: "Holding: method and timelines stop, outputs keep their values." },
  Unpause: { signature: "Unpause", argument: "none", help: "Leaves Paused (manual commands only, not in a method)." },
  Unhold: { signature: "Unhold", argument: "none", help: "Leaves Holding (manual commands only, not in a method)." },
  Stop: { signature: "Stop", argument: "none", help: "Ends the run; outputs to safe values." },
  Restart: { signature: "Restart", argument: "none", help: "Stop, then at once a new run of the same method." },
  "Increment run counter": { signature: "Increment run counter", argument: "none", help: "Counts Run Counter up by one." },
  "Run counter": { signature: "Run counter: <n>", argument: "required", help: "Sets Run Counter (kept across runs)." },
  Batch: { signature: "Batch: <text>", argument: "required", help: "Sets Batch Name." },
  Simulate: { signature: "Simulate: <tag> = <value> [unit]", argument: "required", help: "The tag reports a value of your choice (flagged simulated)." },
  "Simulate off": { signature: "Simulate off: <tag>", argument: "required", help: "The tag reports its real value again." },
  Notify: { signature: "Notify: <text>", argument: "required", help: "Notifies the people watching the unit." },
  Block: { signature: "Block: <name>", argument: "required", help: "Starts a block: its indented body runs on the block's own timeline until End block." },
  "End block": { signature: "End block", argument: "none", help: "Ends the innermost running block." },
  "End blocks": { signature: "End blocks", argument: "none", help: "Ends every running block." },
  Watch: { signature: "Watch: <tag> <op> <value> [unit]", argument: "required", help: "Runs its indented body once, when the condition first holds." },
  Alarm: { signature: "Alarm: <tag> <op> <value> [unit]", argument: "required", help: "Runs its indented body every time the condition comes to hold." },
  Macro: { signature: "Macro: <name>", argument: "required", help: "Defines a macro: its indented body runs where it is called." },
  "Call macro": { signature: "Call macro: <name>", argument: "required", help: "Runs a macro defined earlier in the method." },
};

const OPERATOR_ONLY = new Set(["Unpause", "Unhold"]);
/** Instructions a method uses most, ranked just below the unit's own commands. */
const COMMON = new Set(["Base", "Wait", "Mark", "Watch", "Alarm", "Block", "End block", "Macro", "Call macro", "Info", "Stop"]);
const TIME_UNITS = ["s", "min", "h"];
export const OPERATORS = ["<=", ">=", "==", "!=", "<", ">", "="];
const CONDITION_OPERATORS = [">", "<", ">=", "<=", "==", "!="];
const NUMBER_THEN_UNIT = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)? +(\S*)$/;

/** The argument hint of a UOD command: what it accepts, in a few words. */
export function commandHint(c: CommandDescription): string {
  const a = c.argument;
  if (!a || a.kind === "none") return "no argument";
  if (a.kind === "choice") return `one of ${(a.choices ?? []).join(", ")}`;
  if (a.kind === "number") {
    const units = a.units ?? [];
    const lo = a.minimum;
    const hi = a.maximum;
    const range = lo != null && hi != null ? `${lo}–${hi}` : lo != null ? `≥ ${lo}` : hi != null ? `≤ ${hi}` : "";
    const first = units[0] ? ` ${units[0]}` : "";
    const others = units.length > 1 ? ` (also ${units.slice(1).join(", ")})` : "";
    return `number${range ? ` ${range}${first}` : first}${others}`.trim();
  }
  return a.pattern ? `text matching ${a.pattern}` : "text";
}

function takesArgument(c: CommandDescription): boolean {
  return !!c.argument && c.argument.kind !== "none";
}

/** Names defined by `<Name>: <argument>` lines of the text (macros, blocks), in order, once each. */
export function definedNames(text: string, instruction: string): string[] {
  const out: string[] = [];
  const re = new RegExp(`^\\s*(?:\\d+(?:\\.\\d+)? +)?${instruction}\\s*:\\s*(.*?)\\s*(?:#.*)?$`);
  for (const line of text.split("\n")) {
    const m = re.exec(line);
    const name = m?.[1];
    if (name && !out.includes(name)) out.push(name);
  }
  return out;
}

function indentOf(line: string): number {
  let n = 0;
  while (n < line.length && (line[n] === " " || line[n] === "\t")) n++;
  return n;
}

/** Is line `index` (0-based) inside the body of a `Block:` line? */
function insideBlock(lines: readonly string[], index: number): boolean {
  let indent = indentOf(lines[index] ?? "");
  for (let i = index - 1; i >= 0 && indent > 0; i--) {
    const line = lines[i] ?? "";
    if (line.trim() === "" || line.trim().startsWith("#")) continue;
    const own = indentOf(line);
    if (own < indent) {
      if (/^\s*(?:\d+(?:\.\d+)? +)?Block\s*:/.test(line)) return true;
      indent = own;
    }
  }
  return false;
}

interface Scored extends CompletionItem {
  score: number;
}

/** Plain code-point order (not the locale's), as Python sorts: both sides must agree. */
function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The order of two items, total (no two distinct items tie, so no engine's sort can swap them):
 * score (the context's relevance) first, then the label case-insensitively, then exactly, then kind.
 */
function byRank(a: Scored, b: Scored): number {
  return (
    b.score - a.score ||
    byCodePoint(a.label.toLowerCase(), b.label.toLowerCase()) ||
    byCodePoint(a.label, b.label) ||
    byCodePoint(a.kind, b.kind)
  );
}

/** Prefix matches (case-insensitive) first, substring matches after; each in byRank order. */
function rank(items: Scored[], typed: string): CompletionItem[] {
  const t = typed.toLowerCase();
  const prefix = items.filter((i) => i.label.toLowerCase().startsWith(t));
  const chosen = prefix.length > 0 || t === "" ? prefix : items.filter((i) => i.label.toLowerCase().includes(t));
  return chosen.sort(byRank).map(({ score: _score, ...item }) => item);
}

function nameItems(uod: UodDescription, text: string, lines: readonly string[], index: number, mode: Mode): Scored[] {
  const items: Scored[] = [];
  for (const c of uod.commands ?? []) {
    items.push({ label: c.name, kind: "command", detail: commandHint(c), apply: takesArgument(c) ? `${c.name}: ` : c.name, score: 3 });
  }
  const inBlock = insideBlock(lines, index);
  // A macro is defined once, at the top of a method: in a body (an indented line, say under an
  // Alarm) `Macro` is rarely meant, so `Ma` there offers Mark first.
  const inBody = indentOf(lines[index] ?? "") > 0;
  const macros = definedNames(text, "Macro").length > 0;
  const commandNames = new Set((uod.commands ?? []).map((c) => c.name));
  for (const [name, spec] of Object.entries(BUILTIN_HELP)) {
    if (commandNames.has(name)) continue;
    if (OPERATOR_ONLY.has(name) && mode === "method") continue;
    let score = COMMON.has(name) ? 2 : 1;
    if (name === "End block" && inBlock) score = 5;
    if (name === "Call macro" && macros) score = 4;
    if (name === "Macro" && inBody) score = 1;
    if (OPERATOR_ONLY.has(name)) score = 4;
    items.push({ label: name, kind: "instruction", detail: spec.signature, apply: spec.argument === "required" ? `${name}: ` : name, score });
  }
  return items;
}

function tagItems(tags: readonly TagDescription[]): Scored[] {
  return tags.map((t) => ({
    label: t.name,
    kind: "tag" as const,
    detail: t.unit ?? (t.choices?.length ? t.choices.join(" | ") : t.kind),
    apply: t.name,
    score: t.kind === "system" ? 1 : 2,
  }));
}

/** In the order given (the usual ones first), the tag's or command's own unit ahead of all. */
function unitItems(units: readonly string[], own: string | null | undefined): Scored[] {
  return units.map((u, i) => ({ label: u, kind: "unit" as const, detail: u === own ? "its own unit" : "unit", apply: u, score: (u === own ? 1 : 0) - i / 1000 }));
}

function valueItems(values: readonly string[], kind: ItemKind): Scored[] {
  return values.map((v, i) => ({ label: v, kind, detail: kind === "block" ? "block" : "value", apply: v, score: -i / 1000 }));
}

/** What to offer after a number and a space in a value: units, or nothing (a number comes first). */
function afterNumber(typed: string, units: readonly string[], own?: string | null): { items: Scored[]; typed: string } | null {
  const m = NUMBER_THEN_UNIT.exec(typed);
  if (!m) return null;
  return { items: unitItems(units, own), typed: m[1] ?? "" };
}

function conditionItems(uod: UodDescription, text: string, arg: string): { items: Scored[]; typed: string } {
  const tags = uod.tags ?? [];
  let at = -1;
  let op = "";
  for (let i = 0; i < arg.length && at < 0; i++) {
    for (const candidate of OPERATORS) {
      if (arg.startsWith(candidate, i)) {
        at = i;
        op = candidate;
        break;
      }
    }
  }
  if (at < 0) {
    const exact = tags.find((t) => arg.startsWith(`${t.name} `) && arg.slice(t.name.length).trim() === "");
    const longer = tags.some((t) => t.name.startsWith(arg) && t.name !== arg.trimEnd());
    if (exact && !longer) return { items: CONDITION_OPERATORS.map((o, i) => ({ label: o, kind: "operator", detail: "compare", apply: `${o} `, score: -i / 1000 })), typed: "" };
    return { items: tagItems(tags), typed: arg };
  }
  const name = arg.slice(0, at).trim();
  const value = arg.slice(at + op.length).trimStart();
  const tag = tags.find((t) => t.name === name);
  if (!tag) return { items: [], typed: value };
  if (tag.name === "Block") return { items: valueItems(definedNames(text, "Block"), "block"), typed: value };
  if (tag.choices && tag.choices.length > 0) return { items: valueItems(tag.choices, "value"), typed: value };
  const units = afterNumber(value, tag.unit ? unitsCompatibleWith(tag.unit) : [], tag.unit);
  return units ?? { items: [], typed: value };
}

function argumentItems(uod: UodDescription, text: string, name: string, arg: string): { items: Scored[]; typed: string } {
  const none = { items: [], typed: arg };
  if (name === "Watch" || name === "Alarm") return conditionItems(uod, text, arg);
  if (name === "Call macro") return { items: valueItems(definedNames(text, "Macro"), "macro"), typed: arg };
  if (name === "Base") return { items: unitItems(uod.base_units ?? TIME_UNITS, null), typed: arg };
  if (name === "Wait" || name === "Pause" || name === "Hold") return afterNumber(arg, TIME_UNITS) ?? none;
  if (name === "Simulate off") return { items: tagItems(uod.tags ?? []), typed: arg };
  if (name === "Simulate") {
    const eq = arg.indexOf("=");
    if (eq < 0) return { items: tagItems(uod.tags ?? []), typed: arg };
    const tag = (uod.tags ?? []).find((t) => t.name === arg.slice(0, eq).trim());
    const value = arg.slice(eq + 1).trimStart();
    if (tag?.choices?.length) return { items: valueItems(tag.choices, "value"), typed: value };
    return afterNumber(value, tag?.unit ? unitsCompatibleWith(tag.unit) : [], tag?.unit) ?? none;
  }
  const command = (uod.commands ?? []).find((c) => c.name === name);
  const a = command?.argument;
  if (!a) return none;
  if (a.kind === "choice") return { items: valueItems(a.choices ?? [], "value"), typed: arg };
  if (a.kind === "number") return afterNumber(arg, a.units ?? [], a.units?.[0]) ?? none;
  return none;
}

/**
 * Completions at 1-based (line, col) of `text`; col is the cursor (1: before the first character).
 */
export function complete(uod: UodDescription, text: string, line: number, col: number, mode: Mode = "method"): CompletionResult {
  const lines = text.split("\n");
  const lineText = lines[line - 1] ?? "";
  const before = lineText.slice(0, Math.max(0, col - 1));
  const empty: CompletionResult = { from: col, to: col, items: [] };
  if (before.includes("#")) return empty;
  let rest = before.slice(indentOf(before));
  const threshold = /^\d+(?:\.\d+)? +/.exec(rest);
  if (threshold) rest = rest.slice(threshold[0].length);
  else if (/^\d+(?:\.\d*)?$/.test(rest)) return empty;
  const colon = rest.indexOf(":");
  if (colon < 0) {
    const items = rank(nameItems(uod, text, lines, line - 1, mode), rest);
    return { from: col - rest.length, to: col, items };
  }
  const name = rest.slice(0, colon).trim();
  const arg = rest.slice(colon + 1).trimStart();
  const { items, typed } = argumentItems(uod, text, name, arg);
  return { from: col - typed.length, to: col, items: rank(items, typed) };
}
