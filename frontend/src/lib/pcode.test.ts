import { describe, expect, it } from "vitest";
import { tokenizeLine, type Token } from "./pcode";

function pieces(line: string, commands?: string[]): [string, string][] {
  return tokenizeLine(line, { commands: new Set(commands ?? []) }).map((t: Token) => [t.type, line.slice(t.from, t.to)]);
}

describe("tokenizeLine", () => {
  it("splits threshold, built-in, argument with number and unit", () => {
    expect(pieces("2 Wait: 5 s")).toEqual([
      ["threshold", "2"],
      ["keyword", "Wait"],
      ["punct", ":"],
      ["number", "5"],
      ["unit", "s"],
    ]);
  });

  it("knows multi-word built-ins and UOD commands", () => {
    expect(pieces("End block")).toEqual([["keyword", "End block"]]);
    expect(pieces("PU01: 20 %", ["PU01"])).toEqual([
      ["command", "PU01"],
      ["punct", ":"],
      ["number", "20"],
      ["unit", "%"],
    ]);
    expect(pieces("Inlet: VA02", ["Inlet"])).toEqual([
      ["command", "Inlet"],
      ["punct", ":"],
      ["argument", "VA02"],
    ]);
    expect(pieces("Frobnicate: 1")[0]).toEqual(["instruction", "Frobnicate"]);
  });

  it("tokenizes conditions of Watch and Alarm at the first operator", () => {
    expect(pieces("Watch: Block Time >= 3.5 min")).toEqual([
      ["keyword", "Watch"],
      ["punct", ":"],
      ["tag", "Block Time"],
      ["operator", ">="],
      ["number", "3.5"],
      ["unit", "min"],
    ]);
    expect(pieces("Alarm: Inlet = VA01")).toEqual([
      ["keyword", "Alarm"],
      ["punct", ":"],
      ["tag", "Inlet"],
      ["operator", "="],
      ["argument", "VA01"],
    ]);
  });

  it("marks indentation, bad indentation and comments", () => {
    expect(pieces("    Mark: A # note")).toEqual([
      ["indent", "    "],
      ["keyword", "Mark"],
      ["punct", ":"],
      ["text", "A"],
      ["comment", "# note"],
    ]);
    expect(pieces("  Stop")[0]).toEqual(["badIndent", "  "]);
    expect(pieces("\tStop")[0]).toEqual(["badIndent", "\t"]);
    expect(pieces("# only a comment")).toEqual([["comment", "# only a comment"]]);
    expect(pieces("")).toEqual([]);
  });

  it("covers every character of a line at most once, in order", () => {
    for (const line of ["1.5 Block: Load # x", "Watch: UV01 > 100 mAU", "Mark:", "  : weird", "Base: CV"]) {
      const toks = tokenizeLine(line);
      let pos = 0;
      for (const t of toks) {
        expect(t.from).toBeGreaterThanOrEqual(pos);
        expect(t.to).toBeGreaterThan(t.from);
        pos = t.to;
      }
      expect(pos).toBeLessThanOrEqual(line.length);
    }
  });
});
