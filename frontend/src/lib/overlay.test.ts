import { describe, expect, it } from "vitest";
import { mergeOverlay, overlayMarks, overlaySeries, overlayTraces, type Overlay } from "./overlay";
import type { Prediction } from "./prediction";

const prediction: Prediction = {
  duration: 30,
  end_state: "Stopped",
  marks: [
    { run_time: 0, text: "Buffer A" },
    { run_time: 20, text: "Load" },
  ],
  watches: [],
  alarms: [],
  tags: { FT01: { min: 0, max: 2, last: 2 } },
  trace: {
    FT01: { run_time: [0, 10, 20], v: [0, 1, 2] },
    Mode: { run_time: [0, 10], v: ["A", null] },
  },
  findings: [],
};
const atStart: Overlay = { prediction, start: 1000 };

describe("overlayTraces", () => {
  it("puts the trace at its run time on the Run Time axis", () => {
    expect(overlayTraces(atStart, ["FT01", "PT01"], "Run Time", false, 5)).toEqual([{ tag: "FT01", x: [0, 10, 20], v: [0, 1, 2] }]);
  });
  it("puts it after the run's start on the clock, after now before Start", () => {
    expect(overlayTraces(atStart, ["FT01"], "Run Time", true, 5)[0]!.x).toEqual([1000, 1010, 1020]);
    expect(overlayTraces({ prediction, start: null }, ["FT01"], "Clock", true, 5)[0]!.x).toEqual([5, 15, 25]);
  });
  it("shows nothing on an axis the prediction does not know, or without a prediction", () => {
    expect(overlayTraces(atStart, ["FT01"], "VT01", false, 5)).toEqual([]);
    expect(overlayTraces(null, ["FT01"], "Run Time", false, 5)).toEqual([]);
  });
  it("breaks the line at text values", () => {
    expect(overlayTraces(atStart, ["Mode"], "Run Time", false, 0)[0]!.v).toEqual([null, null]);
  });
});

describe("mergeOverlay", () => {
  it("puts actual and predicted points on one ascending x, sharing equal x", () => {
    const traces = overlayTraces(atStart, ["FT01"], "Run Time", false, 0);
    const merged = mergeOverlay([0, 5, 20, 25], [[9, 8, 7, 6]], traces);
    expect(merged.x).toEqual([0, 5, 10, 20, 25]);
    expect(merged.actual).toEqual([[9, 8, null, 7, 6]]);
    expect(merged.predicted).toEqual([[0, null, 1, 2, null]]);
  });
  it("keeps the plot's data as it is without traces", () => {
    expect(mergeOverlay([0, 0, 1], [[1, 2, 3]], [])).toEqual({ x: [0, 0, 1], actual: [[1, 2, 3]], predicted: [] });
  });
  it("draws a prediction alone before any sample", () => {
    const traces = overlayTraces(atStart, ["FT01"], "Run Time", false, 0);
    expect(mergeOverlay([], [[]], traces)).toEqual({ x: [0, 10, 20], actual: [[null, null, null]], predicted: [[0, 1, 2]] });
  });
});

describe("overlay series and marks", () => {
  it("draws each trace dashed in its tag's colour on its tag's axis", () => {
    const [series] = overlaySeries(overlayTraces(atStart, ["FT01"], "Run Time", false, 0), () => "#0072B2", () => "y1");
    expect(series).toMatchObject({ label: "FT01 predicted", stroke: "#0072B2", scale: "y1", dash: [6, 4] });
  });
  it("places the predicted marks like the traces", () => {
    expect(overlayMarks(atStart, "Run Time", false, 0)).toEqual([
      { x: 0, text: "Buffer A" },
      { x: 20, text: "Load" },
    ]);
    expect(overlayMarks(atStart, "Run Time", true, 0)[1]).toEqual({ x: 1020, text: "Load" });
    expect(overlayMarks(atStart, "VT01", false, 0)).toEqual([]);
  });
});
