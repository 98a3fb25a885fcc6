// The editor's state logic runs without a DOM: CodeMirror's state package is plain JS.
import { describe, expect, it } from "vitest";
import { Text } from "@codemirror/state";
import { findingsToDiagnostics } from "./editor";

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
