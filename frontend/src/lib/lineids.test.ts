import { describe, expect, it } from "vitest";
import { remapLineIds, violatedLock, type LineRange } from "./lineids";

function edit(oldLines: string[], ids: (string | null)[], newLines: string[], ranges: LineRange[]) {
  return remapLineIds(ids, (n) => oldLines[n - 1]!, (n) => newLines[n - 1]!, newLines.length, ranges);
}

describe("remapLineIds", () => {
  const old = ["Mark: A", "Wait: 2 s", "Mark: B"];
  const ids = ["1", "2", "3"];

  it("keeps the id of an edited line", () => {
    expect(edit(old, ids, ["Mark: A", "Wait: 5 s", "Mark: B"], [{ a0: 2, a1: 2, b0: 2, b1: 2 }])).toEqual(["1", "2", "3"]);
  });
  it("gives a new line after (Enter at the end) or before (Enter at the start) no id", () => {
    expect(edit(old, ids, ["Mark: A", "", "Wait: 2 s", "Mark: B"], [{ a0: 1, a1: 1, b0: 1, b1: 2 }])).toEqual(["1", null, "2", "3"]);
    expect(edit(old, ids, ["", "Mark: A", "Wait: 2 s", "Mark: B"], [{ a0: 1, a1: 1, b0: 1, b1: 2 }])).toEqual([null, "1", "2", "3"]);
  });
  it("drops the id of a removed line", () => {
    expect(edit(old, ids, ["Mark: A", "Mark: B"], [{ a0: 1, a1: 2, b0: 1, b1: 1 }])).toEqual(["1", "3"]);
  });
  it("handles several regions", () => {
    const r = edit(
      old,
      ids,
      ["Mark: Z", "Wait: 2 s", "Mark: B", "Stop"],
      [
        { a0: 1, a1: 1, b0: 1, b1: 1 },
        { a0: 3, a1: 3, b0: 3, b1: 4 },
      ],
    );
    expect(r).toEqual(["1", "2", "3", null]);
  });
});

describe("violatedLock", () => {
  const old = ["Mark: A", "Wait: 2 s", "Mark: B"];
  const ids = ["1", "2", "3"];
  const check = (newLines: string[], newIds: (string | null)[], locked: string[]) =>
    violatedLock(ids, (n) => old[n - 1]!, newIds, (n) => newLines[n - 1]!, new Set(locked));

  it("allows edits of lines that have not started, and new lines after started ones", () => {
    expect(check(["Mark: A", "Wait: 9 s", "Mark: B"], ["1", "2", "3"], ["1"])).toBeNull();
    expect(check(["Mark: A", "Info: x", "Wait: 2 s", "Mark: B"], ["1", null, "2", "3"], ["1", "2"])).toBeNull();
  });
  it("refuses changing or removing a started line", () => {
    expect(check(["Mark: AA", "Wait: 2 s", "Mark: B"], ["1", "2", "3"], ["1"])).toEqual({ line: 1, id: "1" });
    expect(check(["Wait: 2 s", "Mark: B"], ["2", "3"], ["1"])).toEqual({ line: 1, id: "1" });
  });
});
