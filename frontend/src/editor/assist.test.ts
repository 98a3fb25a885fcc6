// Findings as you type (quicklint.ts), their quick fixes, how they merge with the engine's, and
// hover help; CodeMirror's state package runs without a DOM.
import { describe, expect, it } from "vitest";
import { EditorState } from "@codemirror/state";
import shared from "../../../tests/fixtures/completions.json";
import type { UodDescription } from "../types";
import { assist, combinedDiagnostics, findingsToDiagnostics, hoverText, serverFindingsEffect } from "./assist";
import { lintContext, quickLint } from "./quicklint";
import { suggest } from "./suggest";
import { fixedMethod } from "./benchData";

const uod = (shared as unknown as { uod: UodDescription }).uod;
const ctx = lintContext(uod);

describe("quickLint", () => {
  it("finds a misspelt instruction, tag and macro, with the analyzer's codes and suggestions", () => {
    const text = ["Macro: Buffer A", "    Inlet: VA01", "Wiat: 5 s", "Watch: PT1 > 3 bar", "Call macro: Bufer A", "Alarm: PT01 > 3 bar"].join("\n");
    expect(quickLint(ctx, text)).toEqual([
      { severity: "error", code: "unknown-instruction", message: "Unknown instruction 'Wiat'", line: 3, col_start: 1, col_end: 5, suggestion: "Wait" },
      { severity: "error", code: "unknown-tag", message: "Unknown tag 'PT1'", line: 4, col_start: 8, col_end: 11, suggestion: "PT01" },
      { severity: "error", code: "undefined-macro", message: "Macro 'Bufer A' is not defined (defined: Buffer A)", line: 5, col_start: 13, col_end: 20, suggestion: "Buffer A" },
    ]);
  });
  it("ignores comments, thresholds and blank lines; injected code may call the method's macros", () => {
    expect(quickLint(ctx, "# Wiat\n\n  1.5 Mark: x # Wiat")).toEqual([]);
    expect(quickLint(ctx, "Call macro: Elsewhere", { macros: false })).toEqual([]);
  });
  it("suggests like the engine: case-only slips, at most a third of the word", () => {
    expect(suggest("pu01", ["PU01", "PT01"])).toBe("PU01");
    expect(suggest("Frobnicate", ["Flow", "Mark"])).toBeNull();
  });
});

describe("diagnostics", () => {
  it("a suggestion is a quick fix that replaces the word", () => {
    const state = EditorState.create({ doc: "Wiat: 5 s" });
    const [d] = findingsToDiagnostics(state.doc, quickLint(ctx, state.doc.toString()));
    expect(d!.actions?.map((a) => a.name)).toEqual(['Use "Wait"']);
  });
  it("local findings replace the engine's of the same codes; other engine findings stay, mapped", () => {
    let state = EditorState.create({ doc: "Wiat: 5 s\nPU01: 500 %", extensions: [assist({ uod: () => uod, mode: "method" })] });
    const engine = [
      { severity: "error" as const, code: "unknown-instruction", message: "Unknown instruction 'Wiat'", line: 1, col_start: 1, col_end: 5, suggestion: "Wait" },
      { severity: "error" as const, code: "invalid-argument", message: "500 is above the maximum 100", line: 2, col_start: 7, col_end: 12 },
    ];
    state = state.update({ effects: serverFindingsEffect(state, engine) }).state;
    const shown = combinedDiagnostics(state, ctx).map((d) => [d.source, d.from]);
    expect(shown).toEqual([["unknown-instruction", 0], ["invalid-argument", 16]]);
    // typing on line 1 keeps the engine's line-2 finding, moved with the text
    state = state.update({ changes: { from: 0, insert: "# note\n" } }).state;
    expect(combinedDiagnostics(state, ctx).map((d) => [d.source, d.from])).toEqual([["unknown-instruction", 7], ["invalid-argument", 23]]);
    // editing line 2 drops the engine's finding there (stale) until the engine looks again
    state = state.update({ changes: { from: state.doc.line(3).to - 3, to: state.doc.line(3).to - 2, insert: "" } }).state;
    expect(combinedDiagnostics(state, ctx).map((d) => d.source)).toEqual(["unknown-instruction"]);
  });
});

describe("hover help", () => {
  const state = EditorState.create({ doc: "Flow: 60 L/h\nWatch: PT01 > 3 bar\nWait: 5 s" });
  it("a command: its hint and description", () => {
    expect(hoverText(uod, state, 2)!.text).toEqual(["Flow (command): number 0–120 L/h (also L/min, mL/min)", "ramp the pump to a flow over 5 s"]);
  });
  it("a tag: kind, unit, description and its current value", () => {
    const pos = state.doc.line(2).from + 8;
    expect(hoverText(uod, state, pos, (t) => (t === "PT01" ? "1.2 bar" : null))!.text).toEqual(["PT01 (tag, reading, bar)", "column inlet pressure", "Now: 1.2 bar"]);
  });
  it("an instruction: how it is written and what it does", () => {
    expect(hoverText(uod, state, state.doc.line(3).from + 1)!.text[0]).toBe("Wait: <n> s|min|h");
  });
});

describe("the benchmark's method", () => {
  it("has 2,000 lines and no findings", () => {
    const text = fixedMethod(2000);
    expect(text.split("\n")).toHaveLength(2000);
    expect(quickLint(ctx, text)).toEqual([]);
  });
});
