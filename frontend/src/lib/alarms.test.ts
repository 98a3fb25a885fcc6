import { describe, expect, it } from "vitest";
import { alarmMarks, mergeAlarm, unackCounts, type AlarmView, type JournalEntry } from "./alarms";

const alarm = (name: string, priority: AlarmView["priority"], state: AlarmView["state"], unit = "u1"): AlarmView => ({
  unit_id: unit,
  name,
  priority,
  state,
  active: state !== "normal",
  message: "",
  time: 1,
});

describe("alarms", () => {
  it("keeps every alarm not in normal state, unacknowledged and highest first", () => {
    let list: AlarmView[] = [];
    list = mergeAlarm(list, alarm("low one", "low", "unack_active"));
    list = mergeAlarm(list, alarm("urgent one", "urgent", "ack_active"));
    list = mergeAlarm(list, alarm("high one", "high", "unack_active"));
    list = mergeAlarm(list, alarm("high one", "high", "unack_active", "u2"));
    expect(list.map((a) => `${a.unit_id}/${a.name}`)).toEqual(["u1/high one", "u2/high one", "u1/low one", "u1/urgent one"]);
    list = mergeAlarm(list, alarm("high one", "high", "normal"));
    expect(list.map((a) => `${a.unit_id}/${a.name}`)).toEqual(["u2/high one", "u1/low one", "u1/urgent one"]);
    list = mergeAlarm(list, { ...alarm("low one", "low", "shelved"), declared: false });
    expect(list).toHaveLength(2);
  });

  it("counts unacknowledged alarms per priority, highest first", () => {
    const list = [
      alarm("a", "low", "unack_active"),
      alarm("b", "urgent", "rtn_unack"),
      alarm("c", "urgent", "unack_active"),
      alarm("d", "high", "ack_active"),
      alarm("e", "medium", "shelved"),
    ];
    expect(unackCounts(list)).toEqual([
      { priority: "urgent", count: 2 },
      { priority: "low", count: 1 },
    ]);
    expect(unackCounts([])).toEqual([]);
  });

  it("marks the raises of a run's alarms on its plot", () => {
    const entry = (t: number, state: JournalEntry["state"], previous: JournalEntry["previous"]): JournalEntry => ({
      id: t,
      unit_id: "u",
      run_id: "r",
      name: "PT01 high",
      state,
      previous,
      active: true,
      time: t,
      cause: "condition",
      user: null,
      comment: null,
      value: 3.2,
      shelved_until: null,
      priority: "high",
      message: "",
    });
    expect(alarmMarks([entry(30, "ack_active", "unack_active"), entry(20, "unack_active", "normal")], 5)).toEqual([
      { t: 20, run_time: 15, tag: "Alarm", text: "⚠ PT01 high" },
    ]);
  });
});
