import { describe, expect, it } from "vitest";
import { loadXAxis, saveXAxis, type KeyValueStore } from "./prefs";

function memory(): KeyValueStore & { data: Map<string, string> } {
  const data = new Map<string, string>();
  return { data, getItem: (k) => data.get(k) ?? null, setItem: (k, v) => void data.set(k, v) };
}

const CHOICES = ["Run Time", "Accumulated Volume", "Accumulated CV"];

describe("x-axis choice per user", () => {
  it("is kept per user and UOD", () => {
    const s = memory();
    saveXAxis(s, "alice", "Chromatography", "Accumulated CV");
    expect(loadXAxis(s, "alice", "Chromatography", CHOICES)).toBe("Accumulated CV");
    expect(loadXAxis(s, "bob", "Chromatography", CHOICES)).toBeNull();
    expect(loadXAxis(s, "alice", "Other", CHOICES)).toBeNull();
  });
  it("is ignored when the plot no longer offers it, or the stored text is not ours", () => {
    const s = memory();
    saveXAxis(s, "alice", "Chromatography", "Accumulated CV");
    expect(loadXAxis(s, "alice", "Chromatography", ["Run Time"])).toBeNull();
    s.data.set("setpoint.plot.xAxis.alice", "not json");
    expect(loadXAxis(s, "alice", "Chromatography", CHOICES)).toBeNull();
  });
  it("lasts for the page only when there is no storage or it refuses", () => {
    const refusing: KeyValueStore = {
      getItem: () => null,
      setItem: () => {
        throw new Error("QuotaExceededError");
      },
    };
    expect(() => saveXAxis(refusing, "alice", "C", "Run Time")).not.toThrow();
    expect(loadXAxis(null, "alice", "C", CHOICES)).toBeNull();
  });
});
