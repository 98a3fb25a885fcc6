// Notification settings: which events reach you (per unit or for all), by e-mail and web push.

import { useEffect, useState } from "preact/hooks";
import { useApp } from "../state/app";
import { Spinner } from "../components/bits";
import { notificationSettings, saveNotificationSettings, testNotification, type NotificationSettings, type NotifyRule } from "../lib/alarmsApi";
import { pushSupported, subscribeThisBrowser } from "../lib/push";

const EMPTY_RULE: NotifyRule = {
  unit_id: null,
  alarm_priority: "high",
  run_started: false,
  run_stopped: false,
  run_paused: false,
  method_error: true,
  offline_seconds: null,
  notify_lines: true,
};

const FLAGS: [keyof NotifyRule, string][] = [
  ["run_started", "Run started"],
  ["run_stopped", "Run stopped"],
  ["run_paused", "Run paused"],
  ["method_error", "Method error"],
  ["notify_lines", "Notify: lines"],
];

export function SettingsView() {
  const app = useApp();
  const [s, setS] = useState<NotificationSettings | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [saving, setSaving] = useState(false);

  useEffect(() => {
    notificationSettings(app.api)
      .then(setS)
      .catch((e: Error) => setError(e.message));
  }, []);
  if (error && !s)
    return (
      <p class="error-text" role="alert">
        {error}
      </p>
    );
  if (!s) return <Spinner label="Loading your settings…" />;

  const rule = (i: number, patch: Partial<NotifyRule>) => setS({ ...s, rules: s.rules.map((r, j) => (j === i ? { ...r, ...patch } : r)) });
  const save = async () => {
    setSaving(true);
    try {
      setS(await saveNotificationSettings(app.api, s));
      setError(null);
      app.notify("success", "Notification settings saved");
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setSaving(false);
    }
  };
  const push = async () => {
    try {
      await subscribeThisBrowser(app.api, s.vapid_public_key ?? "");
      setS({ ...s, web_push_enabled: true, push_subscriptions: (s.push_subscriptions ?? 0) + 1 });
      app.notify("success", "This browser will receive notifications; save to keep web push on");
    } catch (e) {
      app.notify("error", `Web push: ${e instanceof Error ? e.message : String(e)}`);
    }
  };
  const test = async () => {
    try {
      const r = await testNotification(app.api);
      app.notify("success", `Test notification sent (${r.queued})`);
    } catch (e) {
      app.notify("error", e instanceof Error ? e.message : String(e));
    }
  };

  return (
    <section class="panel settings-view" aria-labelledby="settings-title">
      <h1 id="settings-title">Notifications</h1>
      <p class="small muted">Events of the units you may see reach you even when no Setpoint page is open.</p>
      <fieldset>
        <legend>How</legend>
        <label>
          E-mail address{" "}
          <input type="email" value={s.email ?? ""} autoComplete="email" onInput={(e) => setS({ ...s, email: e.currentTarget.value })} />
        </label>
        <label class="check">
          <input type="checkbox" checked={s.email_enabled} disabled={!s.email_available} onChange={(e) => setS({ ...s, email_enabled: e.currentTarget.checked })} /> By
          e-mail
          {!s.email_available && <span class="small muted"> (this server sends no e-mail: ask an admin)</span>}
        </label>
        <label class="check">
          <input type="checkbox" checked={s.web_push_enabled} onChange={(e) => setS({ ...s, web_push_enabled: e.currentTarget.checked })} /> By web push to my
          browsers ({s.push_subscriptions ?? 0} subscribed)
        </label>
        <button type="button" class="btn btn-small" disabled={!pushSupported()} onClick={() => void push()}>
          Receive on this browser
        </button>
      </fieldset>
      <fieldset>
        <legend>What</legend>
        {s.rules.length === 0 && <p class="muted">Nothing yet: add a rule.</p>}
        {s.rules.map((r, i) => (
          <div class="rule" key={i} data-testid="notify-rule">
            <label>
              Unit{" "}
              <select value={r.unit_id ?? ""} onChange={(e) => rule(i, { unit_id: e.currentTarget.value || null })}>
                <option value="">All units</option>
                {app.units.value.map((u) => (
                  <option key={u.id} value={u.id}>
                    {u.name}
                  </option>
                ))}
              </select>
            </label>
            <label>
              Alarms{" "}
              <select value={r.alarm_priority ?? ""} onChange={(e) => rule(i, { alarm_priority: e.currentTarget.value || null })}>
                <option value="">none</option>
                <option value="low">low and above</option>
                <option value="medium">medium and above</option>
                <option value="high">high and above</option>
                <option value="urgent">urgent only</option>
              </select>
            </label>
            {FLAGS.map(([key, text]) => (
              <label class="check" key={key}>
                <input type="checkbox" checked={Boolean(r[key])} onChange={(e) => rule(i, { [key]: e.currentTarget.checked })} /> {text}
              </label>
            ))}
            <label>
              Offline for more than (s){" "}
              <input
                type="number"
                min={0}
                value={r.offline_seconds ?? ""}
                onInput={(e) => rule(i, { offline_seconds: e.currentTarget.value === "" ? null : Number(e.currentTarget.value) })}
              />
            </label>
            <button type="button" class="btn btn-small" onClick={() => setS({ ...s, rules: s.rules.filter((_, j) => j !== i) })}>
              Remove rule
            </button>
          </div>
        ))}
        <button type="button" class="btn btn-small" onClick={() => setS({ ...s, rules: [...s.rules, { ...EMPTY_RULE }] })}>
          Add a rule
        </button>
      </fieldset>
      {error && (
        <p class="error-text" role="alert">
          {error}
        </p>
      )}
      <div class="btn-row">
        <button type="button" class="btn btn-primary" disabled={saving} onClick={() => void save()}>
          Save
        </button>
        <button type="button" class="btn" onClick={() => void test()}>
          Send me a test
        </button>
      </div>
    </section>
  );
}
