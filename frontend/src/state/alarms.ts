// Every visible unit's alarms not in normal state, from the /ws topic `alarms` (snapshot, then one
// alarm per change), for the banner on every page and the Alarms page.

import { signal, type Signal } from "@preact/signals";
import type { LiveClient } from "../ws";
import { mergeAlarm, sortAlarms, type AlarmView } from "../lib/alarms";

export interface AlarmStore {
  active: Signal<AlarmView[]>;
  loaded: Signal<boolean>;
  stop(): void;
}

export function createAlarmStore(live: LiveClient): AlarmStore {
  const active = signal<AlarmView[]>([]);
  const loaded = signal(false);
  const off = live.subscribe("alarms", (kind, data) => {
    if (kind === "snapshot") {
      active.value = sortAlarms(((data as AlarmView[]) ?? []).filter((a) => a.state !== "normal"));
      loaded.value = true;
    } else if (data && typeof data === "object") {
      active.value = mergeAlarm(active.value, data as AlarmView);
    }
  });
  return { active, loaded, stop: off };
}
