import { describe, expect, it } from "vitest";
import { notifications } from "./unit";

describe("notifications", () => {
  it("keeps only Notify entries and strips the instruction name", () => {
    const entries = [
      { time: 1, level: "info" as const, message: "Notify: Column loaded", source: "notify" },
      { time: 2, level: "warning" as const, message: "Column pressure above 3 bar", source: "method" },
    ];
    expect(notifications(entries)).toEqual(["Column loaded"]);
  });
});
