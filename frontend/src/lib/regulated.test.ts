import { describe, expect, it } from "vitest";
import {
  auditCsvUrl,
  auditQuery,
  calledNames,
  diffCounts,
  lineDiff,
  localInputToEpoch,
  releaseOf,
  reportUrl,
  signableMeanings,
  stateClass,
  type LibraryVersion,
  type Meaning,
  type Signature,
} from "./regulated";

const sig = (user: string, meaning: Meaning): Signature => ({
  id: 1,
  kind: "method_version",
  record_id: 1,
  label: "",
  meaning,
  user,
  full_name: user.toUpperCase(),
  time: 0,
  time_utc: "1970-01-01 00:00:00 UTC",
  sha256: "",
  comment: null,
  valid: true,
  reason: "",
});

const version = (state: LibraryVersion["state"], signatures: Signature[] = []): LibraryVersion => ({
  id: 1,
  method_id: 1,
  name: "Wash",
  version: 1,
  state,
  author: "ann",
  created: 0,
  text: "",
  sha256: "",
  signatures,
});

describe("signable meanings", () => {
  it("lets the author sign only as authored, and only once", () => {
    expect(signableMeanings(version("draft"), "ann", "operator")).toEqual(["authored"]);
    expect(signableMeanings(version("draft", [sig("ann", "authored")]), "ann", "operator")).toEqual([]);
    expect(signableMeanings(version("reviewed"), "ann", "admin")).toEqual(["authored"]);
  });

  it("has a draft reviewed and a reviewed version approved by someone else", () => {
    expect(signableMeanings(version("draft"), "rex", "operator")).toEqual(["reviewed"]);
    const reviewed = version("reviewed", [sig("rex", "reviewed")]);
    expect(signableMeanings(reviewed, "rex", "operator")).toEqual([]);
    expect(signableMeanings(reviewed, "amy", "operator")).toEqual(["approved"]);
    expect(signableMeanings(version("approved"), "amy", "admin")).toEqual([]);
    expect(signableMeanings(version("retired"), "amy", "admin")).toEqual([]);
  });

  it("gives a viewer nothing to sign", () => {
    expect(signableMeanings(version("draft"), "vic", "viewer")).toEqual([]);
    expect(signableMeanings(version("draft"), "ann", "viewer")).toEqual([]);
  });
});

describe("state badges", () => {
  it("has one class per state and a neutral one for anything else", () => {
    expect(stateClass("draft")).toBe("badge mstate mstate-draft");
    expect(stateClass("approved")).toBe("badge mstate mstate-approved");
    expect(stateClass("retired")).toBe("badge mstate mstate-retired");
    expect(stateClass("bogus")).toBe("badge st-unknown");
  });
});

describe("line diff", () => {
  it("numbers kept, removed and added lines on their own side", () => {
    const d = lineDiff("Prime\nWait: 5 s\nStop\n", "Prime\nWait: 10 s\nMark: done\nStop\n");
    expect(d.map((l) => [l.kind, l.oldNo, l.newNo, l.text])).toEqual([
      ["same", 1, 1, "Prime"],
      ["removed", 2, null, "Wait: 5 s"],
      ["added", null, 2, "Wait: 10 s"],
      ["added", null, 3, "Mark: done"],
      ["same", 3, 4, "Stop"],
    ]);
    expect(diffCounts(d)).toEqual({ added: 2, removed: 1 });
  });

  it("handles texts without a final newline and identical texts", () => {
    const d = lineDiff("a\nb", "a\nb\nc");
    expect(d.filter((l) => l.kind !== "same").map((l) => l.text)).toEqual(expect.arrayContaining(["c"]));
    expect(diffCounts(lineDiff("x\ny", "x\ny"))).toEqual({ added: 0, removed: 0 });
    expect(lineDiff("", "")).toEqual([]);
  });
});

describe("runs and audit", () => {
  it("finds the release among a run's signatures", () => {
    expect(releaseOf([sig("rex", "reviewed")])).toBeNull();
    expect(releaseOf([sig("rex", "reviewed"), sig("amy", "released")])?.user).toBe("amy");
  });

  it("builds report and audit URLs with encoded values, empty filters left out", () => {
    expect(reportUrl("r/1", false)).toBe("/api/runs/r%2F1/report");
    expect(reportUrl("r1", true)).toBe("/api/runs/r1/report.pdf");
    expect(auditQuery({ user: "bob", unit_id: "pc/Chrom", action: "", since: null })).toBe("?user=bob&unit_id=pc%2FChrom");
    expect(auditQuery({})).toBe("");
    expect(auditCsvUrl({ user: "bob", cursor: 5, limit: 50, since: 10 })).toBe("/api/audit/export.csv?user=bob&since=10");
  });

  it("reads a datetime-local value as local time in Unix seconds", () => {
    expect(localInputToEpoch("")).toBeNull();
    expect(localInputToEpoch("not a date")).toBeNull();
    expect(localInputToEpoch("2024-03-01T12:30")).toBe(new Date(2024, 2, 1, 12, 30).getTime() / 1000);
  });
});

describe("library text", () => {
  it("collects the names a text calls that are not built-ins", () => {
    const names = calledNames("Block: A\n    Flow: 60 L/h\n    Inlet: VA01\n    Mark: x\n    1 End block\n");
    expect(names.has("Flow")).toBe(true);
    expect(names.has("Inlet")).toBe(true);
    expect(names.has("Mark")).toBe(false);
    expect(names.has("Block")).toBe(false);
  });
});
