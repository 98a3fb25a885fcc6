import { describe, expect, it } from "vitest";
import { axisRange, timelinePercent, tracePath } from "./prediction";

describe("prediction drawing", () => {
  it("places events on the timeline, clamped", () => {
    expect(timelinePercent(30, 120)).toBe(25);
    expect(timelinePercent(200, 120)).toBe(100);
    expect(timelinePercent(5, 0)).toBe(0);
  });

  it("draws a trace in its box and breaks it at gaps", () => {
    const box = { width: 100, height: 10, yMin: 0, yMax: 10, duration: 10 };
    expect(tracePath({ run_time: [0, 5, 10], v: [0, 5, 10] }, box)).toBe("M0.0 10.0 L50.0 5.0 L100.0 0.0");
    expect(tracePath({ run_time: [0, 5, 10], v: [0, null, 10] }, box)).toBe("M0.0 10.0 M100.0 0.0");
  });

  it("takes an axis' declared range, else the predicted extremes", () => {
    const stats = { PT01: { min: 0.2, max: 1.7, last: 0.4 } };
    expect(axisRange(["PT01"], stats, 0, 5)).toEqual([0, 5]);
    expect(axisRange(["PT01"], stats)).toEqual([0.2, 1.7]);
    expect(axisRange(["FT01"], stats)).toEqual([0, 1]);
  });
});
