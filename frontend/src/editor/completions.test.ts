// The completion rules (what is offered where, unit compatibility, ranking), from the cases
// shared with the aggregator's GET .../method/completions (tests/api/test_completions.py).
import { describe, expect, it } from "vitest";
import { complete, commandHint, definedNames, type Mode } from "./completions";
import { unitsCompatibleWith } from "./unitFamilies";
import type { UodDescription } from "../types";
import shared from "../../../tests/fixtures/completions.json";

interface Case {
  name: string;
  text: string;
  line: number;
  col: number;
  mode: Mode;
  labels?: string[];
  first?: string[];
  absent?: string[];
  start?: number;
  apply?: Record<string, string>;
}

const fixture = shared as unknown as { uod: UodDescription; cases: Case[] };

describe("completions (shared cases)", () => {
  for (const c of fixture.cases) {
    it(c.name, () => {
      const r = complete(fixture.uod, c.text, c.line, c.col, c.mode);
      const labels = r.items.map((i) => i.label);
      if (c.labels) expect(labels).toEqual(c.labels);
      if (c.first) expect(labels.slice(0, c.first.length)).toEqual(c.first);
      for (const gone of c.absent ?? []) expect(labels).not.toContain(gone);
      if (c.start !== undefined) expect(r.from).toBe(c.start);
      expect(r.to).toBe(c.col);
      for (const [label, apply] of Object.entries(c.apply ?? {})) expect(r.items.find((i) => i.label === label)?.apply).toBe(apply);
    });
  }
});

describe("completion details", () => {
  const uod = fixture.uod;
  it("a command's hint says its range in its first unit and the other units", () => {
    const flow = uod.commands!.find((c) => c.name === "Flow")!;
    expect(commandHint(flow)).toBe("number 0–120 L/h (also L/min, mL/min)");
    expect(commandHint(uod.commands!.find((c) => c.name === "Inlet")!)).toBe("one of VA01, VA02, VA03, None");
    expect(commandHint(uod.commands!.find((c) => c.name === "Stop pump")!)).toBe("no argument");
  });
  it("units: the tag's own first, its family after, an unknown unit alone", () => {
    expect(unitsCompatibleWith("mL/min")).toEqual(["mL/min", "L/h", "L/min", "mL/h"]);
    expect(unitsCompatibleWith("furlong")).toEqual(["furlong"]);
  });
  it("incompatible units are never offered", () => {
    const r = complete(uod, "Watch: PT01 > 3 ", 1, 17);
    for (const wrong of ["L/h", "s", "%", "mAU"]) expect(r.items.map((i) => i.label)).not.toContain(wrong);
  });
  it("names defined once each, thresholds and comments ignored", () => {
    expect(definedNames("Macro: A\n  2 Macro: B # x\nMacro: A", "Macro")).toEqual(["A", "B"]);
  });
  it("the detail of an item is its hint", () => {
    const r = complete(uod, "PU", 1, 3);
    expect(r.items[0]).toMatchObject({ label: "PU01", kind: "command", detail: "number 0–100 %", apply: "PU01: " });
  });
});

describe("ranking is a total order", () => {
  const uod = fixture.uod;
  const labels = (u: UodDescription, text: string, line: number, col: number) => complete(u, text, line, col).items.map((i) => i.label);

  it("in an alarm body 'Ma' ranks Mark before Macro, every time", () => {
    const text = "Alarm: PT01 > 4 bar\n    Ma";
    for (let i = 0; i < 5; i++) expect(labels(uod, text, 2, 7)).toEqual(["Mark", "Macro"]);
    // as typed: after "M" Mark is already ahead of Macro, so the list does not reorder under the cursor
    const m = labels(uod, "Alarm: PT01 > 4 bar\n    M", 2, 6);
    expect(m.indexOf("Mark")).toBeLessThan(m.indexOf("Macro"));
  });

  it("at the top level they tie on relevance and go alphabetically", () => {
    expect(labels(uod, "Ma", 1, 3)).toEqual(["Macro", "Mark"]);
  });

  it("the order does not depend on the order of the UOD's commands and tags", () => {
    const reversed: UodDescription = { ...uod, commands: [...(uod.commands ?? [])].reverse(), tags: [...(uod.tags ?? [])].reverse() };
    for (const [text, line, col] of [["", 1, 1], ["    ", 1, 5], ["Watch: ", 1, 8]] as const) {
      expect(labels(reversed, text, line, col)).toEqual(labels(uod, text, line, col));
    }
  });

  it("labels differing only in case keep one order", () => {
    const twins: UodDescription = { ...uod, commands: [{ ...uod.commands![0]!, name: "pump" }, { ...uod.commands![0]!, name: "Pump" }] };
    const flipped: UodDescription = { ...twins, commands: [...twins.commands!].reverse() };
    expect(labels(twins, "pu", 1, 3).slice(0, 2)).toEqual(["Pump", "pump"]);
    expect(labels(flipped, "pu", 1, 3).slice(0, 2)).toEqual(["Pump", "pump"]);
  });
});
