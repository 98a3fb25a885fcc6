import { describe, expect, it } from "vitest";
import type { LiveClient, TopicHandler } from "../ws";
import { createUnitLive } from "./unit";

function fakeLive() {
  const handlers = new Map<string, TopicHandler>();
  const client = {
    subscribe(topic: string, handler: TopicHandler) {
      handlers.set(topic, handler);
      return () => handlers.delete(topic);
    },
  } as unknown as LiveClient;
  const send = (kind: string, kindOf: "snapshot" | "change", data: unknown) => handlers.get(`unit/u1/${kind}`)!(kindOf, data);
  return { client, send, handlers };
}

describe("createUnitLive: the plot gets the stored samples, the values every live change", () => {
  it("plots only samples, holds them to the newest live scan, and skips other runs' samples", () => {
    const { client, send } = fakeLive();
    const u = createUnitLive(client, "u1");
    u.runId = "r1";
    send("tags", "snapshot", []);
    send("samples", "snapshot", { run_id: "r1", samples: [] });
    const resync = u.resync.value;

    send("samples", "change", { run_id: "r1", samples: [{ t: 100, values: { FT01: 1, "Run Time": 0 } }] });
    send("tags", "change", [{ name: "FT01", value: 1.5, tick: 100.1, quality: "good" }]);
    send("tags", "change", [{ name: "FT01", value: 1.7, tick: 100.2, quality: "good" }]);
    expect(u.tags.value.get("FT01")!.value).toBe(1.7); // the display follows every change
    expect(u.samples.get("FT01")).toEqual({ t: [100], v: [1] }); // the plot only what is stored
    expect(u.samples.until()).toBe(100.2);

    send("samples", "change", { run_id: "r1", samples: [{ t: 101, values: { FT01: 2 } }, { t: 101.05, values: { Mark: "Load" } }] });
    send("samples", "change", { run_id: "r0", samples: [{ t: 102, values: { FT01: 9 } }] });
    send("samples", "change", { run_id: null, samples: [{ t: 99.9, values: { FT01: 7 } }] }); // before Start: not stored
    expect(u.samples.get("FT01")).toEqual({ t: [100, 101], v: [1, 2] });
    expect(u.samples.marks().map((m) => m.text)).toEqual(["Load"]);

    send("tags", "change", [{ name: "FT01", value: 0, tick: 150, quality: "stale" }]);
    expect(u.samples.until()).toBe(101.05); // a stale value says nothing about now

    send("samples", "snapshot", { run_id: "r1", samples: [] }); // resubscribed after a reconnect
    expect(u.resync.value).toBe(resync + 1);
  });

  it("records nothing while stopped (the plot then shows the last run)", () => {
    const { client, send } = fakeLive();
    const u = createUnitLive(client, "u1");
    u.recording = false;
    send("samples", "change", { run_id: null, samples: [{ t: 1, values: { FT01: 1 } }] });
    send("tags", "change", [{ name: "FT01", value: 1, tick: 2, quality: "good" }]);
    expect(u.samples.tags()).toEqual([]);
    expect(u.samples.until()).toBeNull();
  });
});
