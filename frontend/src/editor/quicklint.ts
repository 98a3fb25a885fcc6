// Findings computed in the browser as the operator types, from the UOD description and the text:
// the few mistakes typing makes most (a misspelt name, tag or macro), shown at once, with the same
// codes, wording and suggestions as the engine's analyzer. The analyzer's own findings arrive a
// moment later and stay authoritative; the editor shows both without duplicates (assist.ts).

import type { Finding, UodDescription } from "../types";
import { BUILTIN_HELP, OPERATORS, definedNames } from "./completions";
import { suggest } from "./suggest";

/** Codes this linter decides; for these, a line's local finding replaces the engine's. */
export const QUICK_CODES: ReadonlySet<string> = new Set(["unknown-instruction", "unknown-tag", "undefined-macro"]);

export interface LintContext {
  names: readonly string[];
  nameSet: ReadonlySet<string>;
  tags: readonly string[];
  tagSet: ReadonlySet<string>;
}

export function lintContext(uod: UodDescription): LintContext {
  const names = [...Object.keys(BUILTIN_HELP), ...(uod.commands ?? []).map((c) => c.name)];
  const tags = (uod.tags ?? []).map((t) => t.name);
  return { names, nameSet: new Set(names), tags, tagSet: new Set(tags) };
}

function conditionTag(arg: string): string {
  for (let i = 0; i < arg.length; i++) {
    for (const op of OPERATORS) if (arg.startsWith(op, i)) return arg.slice(0, i).trimEnd();
  }
  return arg.trimEnd();
}

export interface LintOptions {
  /** check `Call macro` against the macros of the text (not for injected code, which may call the method's) */
  macros?: boolean;
}

/** Findings for `text`; linear in its length (a 2,000-line method takes a few milliseconds). */
export function quickLint(ctx: LintContext, text: string, opts: LintOptions = {}): Finding[] {
  const checkMacros = opts.macros ?? true;
  const out: Finding[] = [];
  const lines = text.split("\n");
  const macros = definedNames(text, "Macro");
  const macroSet = new Set(macros);
  lines.forEach((raw, index) => {
    const hash = raw.indexOf("#");
    const line = hash >= 0 ? raw.slice(0, hash) : raw;
    if (line.trim() === "") return;
    let pos = 0;
    while (pos < line.length && (line[pos] === " " || line[pos] === "\t")) pos++;
    const threshold = /^\d+(?:\.\d+)? +/.exec(line.slice(pos));
    if (threshold) pos += threshold[0].length;
    const colon = line.indexOf(":", pos);
    const name = (colon >= 0 ? line.slice(pos, colon) : line.slice(pos)).trimEnd();
    const number = index + 1;
    if (name === "") return;
    if (!ctx.nameSet.has(name)) {
      out.push({
        severity: "error",
        code: "unknown-instruction",
        message: `Unknown instruction '${name}'`,
        line: number,
        col_start: pos + 1,
        col_end: pos + name.length + 1,
        suggestion: suggest(name, ctx.names),
      });
      return;
    }
    if (colon < 0) return;
    let argStart = colon + 1;
    while (argStart < line.length && line[argStart] === " ") argStart++;
    const arg = line.slice(argStart).trimEnd();
    if (arg === "") return;
    if (name === "Watch" || name === "Alarm") {
      const tag = conditionTag(arg);
      if (tag !== "" && !ctx.tagSet.has(tag)) {
        out.push({
          severity: "error",
          code: "unknown-tag",
          message: `Unknown tag '${tag}'`,
          line: number,
          col_start: argStart + 1,
          col_end: argStart + tag.length + 1,
          suggestion: suggest(tag, ctx.tags),
        });
      }
    } else if (name === "Call macro" && checkMacros && !macroSet.has(arg)) {
      const names = [...macros].sort();
      out.push({
        severity: "error",
        code: "undefined-macro",
        message: `Macro '${arg}' is not defined` + (names.length ? ` (defined: ${names.join(", ")})` : " (none defined)"),
        line: number,
        col_start: argStart + 1,
        col_end: argStart + arg.length + 1,
        suggestion: suggest(arg, names),
      });
    }
  });
  return out;
}
