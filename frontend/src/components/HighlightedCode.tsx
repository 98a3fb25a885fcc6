// Read-only P-code with highlighting and line states, without loading the editor.

import { tokenizeLine } from "../lib/pcode";
import type { MethodView } from "../types";

const CLS: Record<string, string> = {
  threshold: "pc-threshold",
  keyword: "pc-keyword",
  command: "pc-command",
  instruction: "pc-unknown",
  argument: "pc-arg",
  tag: "pc-tag",
  operator: "pc-op",
  number: "pc-number",
  unit: "pc-unit",
  text: "pc-text",
  comment: "pc-comment",
  badIndent: "pc-bad-indent",
};

export function HighlightedCode({ text, commands, method }: { text: string; commands: ReadonlySet<string>; method?: MethodView }) {
  const lines = text.split("\n");
  const started = new Set(method?.started ?? []);
  const completed = new Set(method?.completed ?? []);
  const failed = new Set(method?.failed ?? []);
  return (
    <pre class="code" tabIndex={0} aria-label="Method text">
      {lines.map((line, i) => {
        const id = method?.lines[i]?.id;
        const st = id ? (failed.has(id) ? "failed" : completed.has(id) ? "completed" : started.has(id) ? "started" : "") : "";
        const parts = [];
        let pos = 0;
        for (const t of tokenizeLine(line, { commands })) {
          if (t.from > pos) parts.push(line.slice(pos, t.from));
          parts.push(<span class={CLS[t.type]}>{line.slice(t.from, t.to)}</span>);
          pos = t.to;
        }
        if (pos < line.length) parts.push(line.slice(pos));
        return (
          <div class={`code-line${st ? ` cm-line-${st}` : ""}`} data-state={st || undefined} key={i}>
            <span class="ln" aria-hidden="true">
              {i + 1}
            </span>
            {parts.length ? parts : " "}
          </div>
        );
      })}
    </pre>
  );
}
