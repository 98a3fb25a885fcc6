import { describe, expect, it } from "vitest";
import { checkEntry, entryPcode } from "./units";

const pump = { units: ["%"], minimum: 0, maximum: 100 };

describe("checkEntry", () => {
  it("accepts a number with, without or glued to its unit", () => {
    expect(checkEntry("20", pump)).toMatchObject({ ok: true, value: 20, argument: "20 %" });
    expect(checkEntry("20 %", pump)).toMatchObject({ ok: true, argument: "20 %" });
    expect(checkEntry(" 20% ", pump)).toMatchObject({ ok: true, argument: "20 %" });
    expect(checkEntry("1,5", pump)).toMatchObject({ ok: true, value: 1.5 });
  });

  it("refuses other units, with a did-you-mean for a case slip", () => {
    expect(checkEntry("20 L/h", pump)).toMatchObject({ ok: false });
    const r = checkEntry("5 ml", { units: ["mL", "L"] });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toContain('did you mean "mL"');
  });

  it("uses the selected unit when none is typed", () => {
    expect(checkEntry("5", { units: ["L", "mL"] }, "mL")).toMatchObject({ ok: true, argument: "5 mL" });
    expect(checkEntry("5", { units: ["L", "mL"] }, "kg")).toMatchObject({ ok: true, argument: "5 L" });
  });

  it("refuses text, empty input and values outside the limits", () => {
    expect(checkEntry("", pump).ok).toBe(false);
    expect(checkEntry("abc", pump).ok).toBe(false);
    expect(checkEntry("101", pump)).toMatchObject({ ok: false, error: "Maximum is 100 %" });
    expect(checkEntry("-1", pump)).toMatchObject({ ok: false, error: "Minimum is 0 %" });
  });

  it("handles unitless entries", () => {
    expect(checkEntry("3", { units: [] })).toMatchObject({ ok: true, unit: null, argument: "3" });
    expect(checkEntry("3 s", { units: [] }).ok).toBe(false);
  });

  it("makes the P-code line", () => {
    expect(entryPcode("PU01", "20 %")).toBe("PU01: 20 %");
  });
});
