import { describe, expect, it } from "vitest";
import { contrastRatio, parseHex, readableOnWhite } from "./contrast";

describe("contrast", () => {
  it("computes WCAG ratios", () => {
    expect(contrastRatio([0, 0, 0], [255, 255, 255])).toBeCloseTo(21, 0);
    expect(contrastRatio([255, 255, 255], [255, 255, 255])).toBeCloseTo(1, 5);
  });
  it("darkens a light colour until it is readable on white, keeps dark ones", () => {
    const fixed = readableOnWhite("#2ca02c");
    expect(contrastRatio(parseHex(fixed)!, [255, 255, 255])).toBeGreaterThanOrEqual(4.5);
    expect(readableOnWhite("#1f2933")).toBe("#1f2933");
    expect(readableOnWhite("rebeccapurple")).toBe("rebeccapurple");
    expect(parseHex("#abc")).toEqual([170, 187, 204]);
  });
});
