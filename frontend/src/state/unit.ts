// Live state of one unit while its view is open: one /ws subscription per topic, released on dispose.

import { batch, signal, type Signal } from "@preact/signals";
import type { LiveClient } from "../ws";
import type { ErrorLogEntry, MethodView, RunLog, Scalar, TagState, UnitSummary } from "../types";
import { SeriesBuffer } from "../lib/plotdata";
import { appendErrors, mergeRunLog, mergeTags, runLogSnapshot } from "./merge";

export interface UnitLive {
  id: string;
  tags: Signal<Map<string, TagState>>;
  runlog: Signal<RunLog>;
  method: Signal<MethodView | null>;
  control: Signal<UnitSummary | null>;
  errors: Signal<ErrorLogEntry[]>;
  watchers: Signal<string[]>;
  /** the plot's samples: the stored ones, as they are stored; `samplesVersion` changes with them */
  samples: SeriesBuffer;
  samplesVersion: Signal<number>;
  /** append live samples to `samples` (off while stopped: the plot then shows the last run) */
  recording: boolean;
  /** the run shown; samples of another run are not appended (null: any) */
  runId: string | null;
  /** changes after every (re)subscription to the samples: those sent meanwhile are missed */
  resync: Signal<number>;
  dispose(): void;
}

/** `onNotify` receives the text of each P-code `Notify:` that arrives while the view is open. */
export function createUnitLive(
  live: LiveClient,
  id: string,
  annotationTags: string[] = ["Mark"],
  onNotify: (text: string) => void = () => {},
): UnitLive {
  const u: UnitLive = {
    id,
    tags: signal(new Map()),
    runlog: signal({ run_id: null, lines: [] }),
    method: signal(null),
    control: signal(null),
    errors: signal([]),
    watchers: signal([]),
    samples: new SeriesBuffer(6000, new Set(annotationTags)),
    samplesVersion: signal(0),
    recording: true,
    runId: null,
    resync: signal(0),
    dispose: () => {},
  };
  const offs: (() => void)[] = [];
  const topic = (name: string) => `unit/${id}/${name}`;

  offs.push(
    live.subscribe(topic("tags"), (kind, data) => {
      const list = (data as TagState[]) ?? [];
      batch(() => {
        u.tags.value = mergeTags(kind === "snapshot" ? new Map() : u.tags.value, list);
        // Live values are not plotted (most are never stored); they only say how far "now" is.
        let now = -Infinity;
        if (u.recording) for (const t of list) if (t.tick != null && t.quality !== "stale") now = Math.max(now, t.tick);
        if (Number.isFinite(now)) {
          u.samples.setNow(now);
          u.samplesVersion.value++;
        }
      });
    }),
  );
  offs.push(
    live.subscribe(topic("samples"), (kind, data) => {
      if (kind === "snapshot") {
        u.resync.value++;
        return;
      }
      if (appendSamples(u, data as LiveSamples)) u.samplesVersion.value++;
    }),
  );
  offs.push(
    live.subscribe(topic("runlog"), (kind, data) => {
      const log = data as RunLog;
      u.runlog.value = kind === "snapshot" ? runLogSnapshot(log) : mergeRunLog(u.runlog.value, log);
    }),
  );
  offs.push(
    live.subscribe(topic("method"), (_kind, data) => {
      u.method.value = data as MethodView;
    }),
  );
  offs.push(
    live.subscribe(topic("control"), (_kind, data) => {
      u.control.value = { ...(data as UnitSummary), received_at: Date.now() / 1000 };
    }),
  );
  offs.push(
    live.subscribe(topic("errors"), (kind, data) => {
      const list = (data as ErrorLogEntry[]) ?? [];
      if (kind === "change") for (const e of notifications(list)) onNotify(e);
      u.errors.value = kind === "snapshot" ? appendErrors([], list) : appendErrors(u.errors.value, list);
    }),
  );
  offs.push(
    live.subscribe(topic("watchers"), (_kind, data) => {
      u.watchers.value = (data as string[]) ?? [];
    }),
  );
  u.dispose = () => {
    for (const off of offs) off();
  };
  return u;
}

/** A data-log sample as `/ws` sends it (docs/api.md): the points it adds to the stored run. */
export interface LiveSamples {
  run_id: string | null;
  samples: { t: number; values: Record<string, Scalar> }[];
}

/** Append a live sample's points to the plot, when it belongs to the run shown. A sample of no run
 * (taken just before Start, and delivered after the page learnt of the run) is stored nowhere. */
export function appendSamples(u: Pick<UnitLive, "samples" | "recording" | "runId">, data: LiveSamples): boolean {
  if (!u.recording || !data || !data.run_id || (u.runId && data.run_id !== u.runId)) return false;
  let added = false;
  for (const s of data.samples ?? []) {
    for (const [tag, value] of Object.entries(s.values)) {
      u.samples.append(tag, s.t, value);
      added = true;
    }
  }
  return added;
}

/** The engine logs a P-code `Notify: <text>` as an info entry from source "notify". */
export function notifications(entries: ErrorLogEntry[]): string[] {
  return entries.filter((e) => e.source === "notify").map((e) => e.message.replace(/^Notify: /, ""));
}
