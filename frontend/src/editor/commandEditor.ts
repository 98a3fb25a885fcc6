// The unit view's manual-command box as a one-line CodeMirror editor: the same completions, hover
// help and findings as the method editor (mode "inject": Unpause and Unhold are offered), Enter
// sends (Enter with the completion list open picks the item instead). Loaded on demand.

import { EditorState, type Extension } from "@codemirror/state";
import { EditorView, keymap, placeholder } from "@codemirror/view";
import { defaultKeymap, history, historyKeymap } from "@codemirror/commands";
import { completionStatus } from "@codemirror/autocomplete";
import { assist, type AssistOptions } from "./assist";

export interface CommandEditorOptions {
  assist: Omit<AssistOptions, "mode">;
  label: string;
  id: string;
  placeholder: string;
  onSubmit: (text: string) => void;
  onChange: (text: string) => void;
}

export interface CommandEditor {
  text(): string;
  clear(): void;
  focus(): void;
  setEnabled(enabled: boolean): void;
  destroy(): void;
}

const singleLine: Extension = EditorState.transactionFilter.of((tr) => (tr.newDoc.lines > 1 ? [] : tr));

export function createCommandEditor(parent: HTMLElement, opts: CommandEditorOptions): CommandEditor {
  let enabled = true;
  const submit = (view: EditorView): boolean => {
    if (completionStatus(view.state) === "active") return false;
    if (enabled && view.state.doc.toString().trim()) opts.onSubmit(view.state.doc.toString());
    return true;
  };
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc: "",
      extensions: [
        assist({ ...opts.assist, mode: "inject" }, 30),
        keymap.of([{ key: "Enter", run: submit }, ...defaultKeymap, ...historyKeymap]),
        history(),
        singleLine,
        placeholder(opts.placeholder),
        // tabindex: still reachable (and scrollable) by keyboard while disabled, when it is not editable
        EditorView.contentAttributes.of({ "aria-label": opts.label, id: opts.id, role: "textbox", "aria-multiline": "false", tabindex: "0" }),
        EditorView.updateListener.of((u) => {
          if (u.docChanged) opts.onChange(u.state.doc.toString());
        }),
        EditorView.theme({
          "&": { border: "1px solid #8a94a3", borderRadius: "4px", background: "#fff", flex: "1" },
          "&.cm-focused": { outline: "3px solid #1a56db", outlineOffset: "1px" },
          ".cm-content": { fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace", padding: "6px 4px" },
        }),
      ],
    }),
  });
  return {
    text: () => view.state.doc.toString(),
    clear: () => view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: "" } }),
    focus: () => view.focus(),
    setEnabled(on) {
      enabled = on;
      view.contentDOM.setAttribute("contenteditable", String(on));
      view.contentDOM.setAttribute("aria-disabled", String(!on));
    },
    destroy: () => view.destroy(),
  };
}
