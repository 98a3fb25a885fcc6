import { describe, expect, it } from "vitest";
import { formatAge, formatDuration, formatNumber, formatProgress, formatValue } from "./format";

describe("format", () => {
  it("formats durations as m:ss or h:mm:ss", () => {
    expect(formatDuration(0)).toBe("0:00");
    expect(formatDuration(75.9)).toBe("1:15");
    expect(formatDuration(3725)).toBe("1:02:05");
    expect(formatDuration(null)).toBe("–");
    expect(formatDuration(-5)).toBe("-0:05");
  });
  it("shows numbers with precision that fits their size", () => {
    expect(formatNumber(1234.5)).toBe("1235");
    expect(formatNumber(123.45)).toBe("123.5");
    expect(formatNumber(12.345)).toBe("12.35");
    expect(formatNumber(0.012345)).toBe("0.0123");
    expect(formatNumber(0)).toBe("0");
    expect(formatNumber(0.00001)).toBe("1.00e-5");
  });
  it("formats values with units, text, booleans and missing values", () => {
    expect(formatValue(20, "%")).toBe("20.00 %");
    expect(formatValue("VA01", null)).toBe("VA01");
    expect(formatValue(null, "bar")).toBe("–");
    expect(formatValue(true)).toBe("true");
  });
  it("formats ages and progress", () => {
    expect(formatAge(100, 100.5)).toBe("just now");
    expect(formatAge(100, 142)).toBe("42 s ago");
    expect(formatAge(0, 7200)).toBe("2 h ago");
    expect(formatAge(null, 5)).toBe("never");
    expect(formatProgress(0.421)).toBe("42 %");
    expect(formatProgress(2)).toBe("100 %");
    expect(formatProgress(null)).toBe("");
  });
});
