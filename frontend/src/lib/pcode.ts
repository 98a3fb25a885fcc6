// A line tokenizer for P-code (pcode.md sections 1-7), used for highlighting only: it never
// refuses anything, the engine's analyzer is the judge of correctness.

export type TokenType =
  | "indent"
  | "badIndent"
  | "threshold"
  | "keyword"
  | "command"
  | "instruction"
  | "punct"
  | "argument"
  | "tag"
  | "operator"
  | "number"
  | "unit"
  | "text"
  | "comment";

export interface Token {
  from: number;
  to: number;
  type: TokenType;
}

export const BUILTINS: ReadonlySet<string> = new Set([
  "Base",
  "Wait",
  "Mark",
  "Info",
  "Warning",
  "Error",
  "Pause",
  "Unpause",
  "Hold",
  "Unhold",
  "Stop",
  "Restart",
  "Increment run counter",
  "Run counter",
  "Batch",
  "Simulate",
  "Simulate off",
  "Notify",
  "Block",
  "End block",
  "End blocks",
  "Watch",
  "Alarm",
  "Macro",
  "Call macro",
]);

/** Instructions whose argument is a condition (section 6). */
const CONDITION_INSTRUCTIONS: ReadonlySet<string> = new Set(["Watch", "Alarm"]);
/** Instructions whose argument is free text (no number/unit highlighting). */
const TEXT_INSTRUCTIONS: ReadonlySet<string> = new Set([
  "Mark",
  "Info",
  "Warning",
  "Error",
  "Batch",
  "Notify",
  "Block",
  "Macro",
  "Call macro",
]);

const OPERATORS = ["<=", ">=", "==", "!=", "<", ">", "="];
const NUMBER_RE = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?/;

export interface TokenizeOptions {
  /** the UOD's command names; other unknown names are tokenized as "instruction" */
  commands?: ReadonlySet<string>;
}

export function tokenizeLine(line: string, opts: TokenizeOptions = {}): Token[] {
  const tokens: Token[] = [];
  const hash = line.indexOf("#");
  const codeEnd = hash >= 0 ? hash : line.length;

  let pos = 0;
  while (pos < codeEnd && (line[pos] === " " || line[pos] === "\t")) pos++;
  if (pos > 0) {
    const ws = line.slice(0, pos);
    const bad = ws.includes("\t") || ws.length % 4 !== 0;
    tokens.push({ from: 0, to: pos, type: bad ? "badIndent" : "indent" });
  }

  const code = line.slice(pos, codeEnd);
  if (code.trim() !== "") {
    const thr = /^(\d+(?:\.\d+)?)( +)(?=\S)/.exec(code);
    if (thr && thr[1] !== undefined && thr[2] !== undefined) {
      tokens.push({ from: pos, to: pos + thr[1].length, type: "threshold" });
      pos += thr[1].length + thr[2].length;
    }
    const rest = line.slice(pos, codeEnd);
    const colon = rest.indexOf(":");
    const rawName = colon >= 0 ? rest.slice(0, colon) : rest;
    const name = rawName.trimEnd();
    if (name.length > 0) {
      const type: TokenType = BUILTINS.has(name)
        ? "keyword"
        : opts.commands?.has(name)
          ? "command"
          : "instruction";
      tokens.push({ from: pos, to: pos + name.length, type });
    }
    if (colon >= 0) {
      const colonAt = pos + colon;
      tokens.push({ from: colonAt, to: colonAt + 1, type: "punct" });
      let argStart = colonAt + 1;
      while (argStart < codeEnd && line[argStart] === " ") argStart++;
      let argEnd = codeEnd;
      while (argEnd > argStart && line[argEnd - 1] === " ") argEnd--;
      if (argEnd > argStart) {
        if (CONDITION_INSTRUCTIONS.has(name)) tokens.push(...conditionTokens(line, argStart, argEnd));
        else if (TEXT_INSTRUCTIONS.has(name)) tokens.push({ from: argStart, to: argEnd, type: "text" });
        else tokens.push(...valueTokens(line, argStart, argEnd));
      }
    }
  }
  if (hash >= 0) tokens.push({ from: hash, to: line.length, type: "comment" });
  return tokens;
}

/** `<tag> <op> <value> [unit]`: the first operator found splits the condition. */
function conditionTokens(line: string, from: number, to: number): Token[] {
  const arg = line.slice(from, to);
  let best = -1;
  let op = "";
  for (let i = 0; i < arg.length && best < 0; i++) {
    for (const candidate of OPERATORS) {
      if (arg.startsWith(candidate, i)) {
        best = i;
        op = candidate;
        break;
      }
    }
  }
  if (best < 0) return [{ from, to, type: "tag" }];
  const out: Token[] = [];
  const tagEnd = from + arg.slice(0, best).trimEnd().length;
  if (tagEnd > from) out.push({ from, to: tagEnd, type: "tag" });
  out.push({ from: from + best, to: from + best + op.length, type: "operator" });
  let vs = from + best + op.length;
  while (vs < to && line[vs] === " ") vs++;
  if (vs < to) out.push(...valueTokens(line, vs, to));
  return out;
}

/** A number followed by a unit is highlighted as such; anything else is an argument. */
function valueTokens(line: string, from: number, to: number): Token[] {
  const arg = line.slice(from, to);
  const m = NUMBER_RE.exec(arg);
  if (!m) return [{ from, to, type: "argument" }];
  const out: Token[] = [{ from, to: from + m[0].length, type: "number" }];
  let us = from + m[0].length;
  while (us < to && line[us] === " ") us++;
  if (us < to) {
    const unitText = line.slice(us, to);
    out.push({ from: us, to, type: /^[A-Za-z%°µ/][\w%°µ/*.^-]*$/.test(unitText) ? "unit" : "argument" });
  }
  return out;
}
