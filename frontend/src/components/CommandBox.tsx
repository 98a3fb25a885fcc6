// The manual-command box of the unit view: P-code typed with the method editor's completions and
// help (editor/commandEditor.ts), sent as injected code.

import { useEffect, useRef, useState } from "preact/hooks";
import type { Signal } from "@preact/signals";
import { useApp } from "../state/app";
import type { TagState, UodDescription } from "../types";
import type { CommandEditor } from "../editor/commandEditor";
import { formatValue } from "../lib/format";

interface Props {
  unitId: string;
  canOperate: boolean;
  online: boolean;
  uod: UodDescription | null;
  tags?: Signal<Map<string, TagState>>;
}

export function CommandBox({ unitId, canOperate, online, uod, tags }: Props) {
  const app = useApp();
  const host = useRef<HTMLDivElement>(null);
  const editor = useRef<CommandEditor | null>(null);
  const uodRef = useRef(uod);
  uodRef.current = uod;
  const [text, setText] = useState("");
  const [busy, setBusy] = useState(false);
  const enabled = canOperate && online;
  const id = `inject-${unitId}`;

  const send = async (pcode: string) => {
    if (!pcode.trim() || busy) return;
    setBusy(true);
    try {
      await app.api.inject(unitId, pcode);
      app.notify("success", `Sent: ${pcode}`);
      editor.current?.clear();
    } catch (err) {
      app.notify("error", `Command refused: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      setBusy(false);
    }
  };
  const sendRef = useRef(send);
  sendRef.current = send;

  useEffect(() => {
    let cancelled = false;
    void import("../editor/commandEditor").then((mod) => {
      if (cancelled || !host.current) return;
      editor.current = mod.createCommandEditor(host.current, {
        assist: {
          uod: () => uodRef.current,
          value: (name) => {
            const t = tags?.peek().get(name);
            return t ? formatValue(t.value, t.unit) : null;
          },
        },
        label: "Manual command (P-code)",
        id,
        placeholder: "e.g. Mark: sample taken (Ctrl-Space: suggestions)",
        onSubmit: (t) => void sendRef.current(t),
        onChange: setText,
      });
      editor.current.setEnabled(enabled);
    });
    return () => {
      cancelled = true;
      editor.current?.destroy();
      editor.current = null;
    };
  }, [unitId]);

  useEffect(() => editor.current?.setEnabled(enabled), [enabled]);

  return (
    <form
      class="inject"
      onSubmit={(e) => {
        e.preventDefault();
        void send(editor.current?.text() ?? text);
      }}
    >
      <label for={id} onClick={() => editor.current?.focus()}>
        Manual command (P-code)
      </label>
      <div class="row">
        <div ref={host} class="command-host" data-testid="command-box" />
        <button type="submit" class="btn" disabled={!enabled || busy || !text.trim()}>
          Send
        </button>
      </div>
    </form>
  );
}
