// The alarm and notification calls of docs/api.md, over the app's Api (cookie and bearer alike).

import type { Api } from "../api";
import type { AlarmView, JournalPage } from "./alarms";

const enc = encodeURIComponent;

export type AlarmActionPath = "ack" | "shelve" | "unshelve" | "out-of-service" | "return-to-service";

export interface NotifyRule {
  unit_id: string | null;
  alarm_priority: string | null;
  run_started: boolean;
  run_stopped: boolean;
  run_paused: boolean;
  method_error: boolean;
  offline_seconds: number | null;
  notify_lines: boolean;
}

export interface NotificationSettings {
  email: string | null;
  email_enabled: boolean;
  web_push_enabled: boolean;
  rules: NotifyRule[];
  email_available?: boolean;
  vapid_public_key?: string;
  push_subscriptions?: number;
}

export interface JournalFilter {
  unit_id?: string;
  run_id?: string;
  since?: number | null;
  until?: number | null;
  cursor?: number | null;
  limit?: number;
}

export function alarmAction(api: Api, unit: string, name: string, action: AlarmActionPath, body: Record<string, unknown> = {}) {
  return api.request("POST", `/api/units/${enc(unit)}/alarms/${enc(name)}/${action}`, body);
}

export function activeAlarms(api: Api): Promise<AlarmView[]> {
  return api.request<AlarmView[]>("GET", "/api/alarms");
}

export function journal(api: Api, f: JournalFilter): Promise<JournalPage> {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(f)) if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  const s = q.toString();
  return api.request<JournalPage>("GET", `/api/alarms/journal${s ? `?${s}` : ""}`);
}

export function notificationSettings(api: Api): Promise<NotificationSettings> {
  return api.request<NotificationSettings>("GET", "/api/me/notifications");
}

export function saveNotificationSettings(api: Api, s: NotificationSettings): Promise<NotificationSettings> {
  const { email, email_enabled, web_push_enabled, rules } = s;
  return api.request<NotificationSettings>("PUT", "/api/me/notifications", { email: email || null, email_enabled, web_push_enabled, rules });
}

export function testNotification(api: Api): Promise<{ queued: number }> {
  return api.request("POST", "/api/me/notifications/test", {});
}

export function addPushSubscription(api: Api, subscription: PushSubscriptionJSON): Promise<void> {
  return api.request("POST", "/api/me/push-subscriptions", subscription);
}
