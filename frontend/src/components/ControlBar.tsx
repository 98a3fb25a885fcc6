// Run control: Start, Pause/Unpause, Hold/Unhold always in the same place; Stop and Restart ask first.

import { useState } from "preact/hooks";
import type { ControlAction } from "../api";
import { useApp } from "../state/app";
import { ConfirmDialog } from "./Dialog";

interface Props {
  unitId: string;
  unitName: string;
  state: string | null | undefined;
  online: boolean;
  canOperate: boolean;
}

export function ControlBar({ unitId, unitName, state, online, canOperate }: Props) {
  const app = useApp();
  const [busy, setBusy] = useState<ControlAction | null>(null);
  const [confirm, setConfirm] = useState<ControlAction | null>(null);
  const running = state === "Running" || state === "Restarting";
  const paused = state === "Paused";
  const holding = state === "Holding";
  const active = running || paused || holding;
  const disabledWhy = !canOperate ? "Needs the operator role" : !online ? "The unit is offline" : null;

  const act = async (action: ControlAction) => {
    setConfirm(null);
    setBusy(action);
    try {
      await app.api.control(unitId, action);
      app.notify("success", `${action} sent to ${unitName}`);
    } catch (e) {
      app.notify("error", `${action} refused: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      setBusy(null);
    }
  };

  const button = (action: ControlAction, enabled: boolean, cls = "btn", onClick?: () => void) => (
    <button
      type="button"
      class={cls}
      disabled={!!disabledWhy || !enabled || busy !== null}
      title={disabledWhy ?? undefined}
      onClick={onClick ?? (() => void act(action))}
    >
      {busy === action ? `${action}…` : action}
    </button>
  );

  return (
    <div class="control-bar" role="group" aria-label="Run control">
      {button("Start", !active, "btn btn-primary")}
      {paused ? button("Unpause", true) : button("Pause", running)}
      {holding ? button("Unhold", true) : button("Hold", running)}
      {button("Stop", active, "btn btn-danger", () => setConfirm("Stop"))}
      {button("Restart", active, "btn btn-warn", () => setConfirm("Restart"))}
      {disabledWhy && <span class="muted small">{disabledWhy}</span>}
      {confirm && (
        <ConfirmDialog
          title={`${confirm} ${unitName}?`}
          danger
          confirmLabel={confirm === "Stop" ? "Stop the run" : "Restart the run"}
          message={
            confirm === "Stop" ? (
              <p>
                The run ends now: running commands are cancelled and every output goes to its safe value. This cannot be undone.
              </p>
            ) : (
              <p>The run stops and a new run of the same method starts at once, with a new run id and timelines from zero.</p>
            )
          }
          onCancel={() => setConfirm(null)}
          onConfirm={() => void act(confirm)}
        />
      )}
    </div>
  );
}

/** A manual command: P-code injected into the unit (runs alongside the method). */
export function InjectBox({ unitId, canOperate, online }: { unitId: string; canOperate: boolean; online: boolean }) {
  const app = useApp();
  const [text, setText] = useState("");
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (!text.trim()) return;
    setBusy(true);
    try {
      await app.api.inject(unitId, text);
      app.notify("success", `Sent: ${text}`);
      setText("");
    } catch (err) {
      app.notify("error", `Command refused: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="inject" onSubmit={submit}>
      <label for={`inject-${unitId}`}>Manual command (P-code)</label>
      <div class="row">
        <input id={`inject-${unitId}`} class="mono" value={text} placeholder="e.g. Mark: sample taken" onInput={(e) => setText(e.currentTarget.value)} disabled={!canOperate || !online} />
        <button type="submit" class="btn" disabled={!canOperate || !online || busy || !text.trim()}>
          Send
        </button>
      </div>
    </form>
  );
}
