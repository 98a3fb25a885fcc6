// Diagnostics as you type on a 2,000-line method (issue 20: under 300 ms, never blocking typing):
// one keystroke's full cost in the editor state (the change, the line ids and locks, the engine's
// findings mapped, the local findings), and completions at the cursor. `npx vitest bench --run`;
// the figures are recorded in bench/README.md.
import { bench, describe } from "vitest";
import { EditorState } from "@codemirror/state";
import shared from "../../../tests/fixtures/completions.json";
import type { UodDescription } from "../types";
import { assist, combinedDiagnostics, serverFindingsEffect } from "./assist";
import { complete } from "./completions";
import { lintContext } from "./quicklint";
import { createMethodState } from "../lib/editor";
import { fixedMethod } from "./benchData";

const uod = (shared as unknown as { uod: UodDescription }).uod;
const ctx = lintContext(uod);
const text = fixedMethod(2000);
const commands = new Set((uod.commands ?? []).map((c) => c.name));
let state = createMethodState({ text, lineIds: text.split("\n").map((_, i) => `L${i + 1}`), commands, label: "m", assist: { uod: () => uod, mode: "method" } });
state = state.update({ effects: serverFindingsEffect(state, [{ severity: "warning", code: "block-not-ended", message: "x", line: 1999 }]) }).state;
const at = state.doc.line(1000).to;

describe("2,000-line method", () => {
  bench("keystroke: change + local findings merged with the engine's", () => {
    const next = state.update({ changes: { from: at, insert: "x" } }).state;
    combinedDiagnostics(next, ctx);
  });
  bench("completions at a line end", () => {
    complete(uod, text, 1000, 20);
  });
  bench("state alone with assist (baseline, no lint)", () => {
    EditorState.create({ doc: "Mark: a", extensions: [assist({ uod: () => uod, mode: "method" })] });
  });
});
