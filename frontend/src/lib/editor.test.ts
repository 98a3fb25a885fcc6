// The editor's state logic runs without a DOM: CodeMirror's state package is plain JS.
import { describe, expect, it } from "vitest";
import { Text } from "@codemirror/state";
import { createMethodState, findingsToDiagnostics, lineIdsOf, lineStatesEffect } from "./editor";

describe("findingsToDiagnostics", () => {
  const doc = Text.of(["Mark: A", "Frob: 1", "Stop"]);
  it("maps 1-based line/column ranges to document offsets", () => {
    const [d] = findingsToDiagnostics(doc, [{ severity: "error", message: "Unknown instruction", line: 2, col_start: 1, col_end: 5, suggestion: "Mark" }]);
    expect(d).toMatchObject({ from: 8, to: 12, severity: "error" });
    expect(d!.message).toContain('did you mean "Mark"');
  });
  it("widens an empty range to the line and skips lines past the end", () => {
    const ds = findingsToDiagnostics(doc, [
      { severity: "warning", message: "w", line: 3, col_start: 1, col_end: 1 },
      { severity: "info", message: "gone", line: 9 },
    ]);
    expect(ds).toEqual([expect.objectContaining({ from: 16, to: 20, severity: "warning" })]);
  });
});


describe("method editor state", () => {
  const text = "Mark: A\nWait: 2 s\nMark: B";
  function setup(completed: string[] = ["1"], started: string[] = []) {
    const refused: string[] = [];
    let state = createMethodState({ text, lineIds: ["1", "2", "3"], commands: new Set(), label: "m", onRefused: (m) => refused.push(m) });
    state = state.update({ effects: lineStatesEffect(started, completed, []) }).state;
    return { state, refused };
  }

  it("refuses typing into a completed line and says which", () => {
    const { state, refused } = setup();
    const next = state.update({ changes: { from: 7, insert: "X" } }).state;
    expect(next.doc.toString()).toBe(text);
    expect(refused).toEqual(["Line 1 has completed and cannot be changed or removed."]);
  });

  it("refuses removing a running line", () => {
    const { state, refused } = setup([], ["2"]);
    const line2 = state.doc.line(2);
    const next = state.update({ changes: { from: line2.from, to: line2.to + 1 } }).state;
    expect(next.doc.toString()).toBe(text);
    expect(refused[0]).toContain("Line 2 has started");
  });

  it("allows a new line after a completed one and edits of lines not started, keeping ids", () => {
    const { state, refused } = setup();
    let next = state.update({ changes: { from: 7, insert: "\nInfo: hi" } }).state;
    expect(next.doc.toString()).toBe("Mark: A\nInfo: hi\nWait: 2 s\nMark: B");
    expect(lineIdsOf(next)).toEqual(["1", null, "2", "3"]);
    const wait = next.doc.line(3);
    next = next.update({ changes: { from: wait.from + 6, to: wait.from + 7, insert: "9" } }).state;
    expect(next.doc.line(3).text).toBe("Wait: 9 s");
    expect(lineIdsOf(next)).toEqual(["1", null, "2", "3"]);
    expect(refused).toEqual([]);
  });

  it("does not lock anything once the line states are cleared (a stopped unit)", () => {
    const { state } = setup();
    const cleared = state.update({ effects: lineStatesEffect([], [], []) }).state;
    expect(cleared.update({ changes: { from: 0, to: 7, insert: "Mark: Z" } }).state.doc.line(1).text).toBe("Mark: Z");
  });
});
