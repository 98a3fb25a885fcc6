// A line diff between two method versions, numbered on both sides; added and removed lines are
// marked by a sign and a label too, not by colour alone.

import { diffCounts, lineDiff } from "../lib/regulated";

interface Props {
  before: string;
  after: string;
  beforeLabel: string;
  afterLabel: string;
}

const SIGN = { same: " ", added: "+", removed: "−" } as const;
const SR = { same: "", added: "added: ", removed: "removed: " } as const;

export function MethodDiff({ before, after, beforeLabel, afterLabel }: Props) {
  const lines = lineDiff(before, after);
  const { added, removed } = diffCounts(lines);
  return (
    <figure class="method-diff" data-testid="method-diff">
      <figcaption class="small">
        From {beforeLabel} to {afterLabel}:{" "}
        {added === 0 && removed === 0 ? "no change" : `${added} line${added === 1 ? "" : "s"} added, ${removed} removed`}
      </figcaption>
      <pre class="diff-lines" tabIndex={0} aria-label={`Differences from ${beforeLabel} to ${afterLabel}`}>
        {lines.map((l, i) => (
          <div key={i} class={`diff-${l.kind}`} data-kind={l.kind}>
            <span class="diff-no" aria-hidden="true">
              {l.oldNo ?? ""}
            </span>
            <span class="diff-no" aria-hidden="true">
              {l.newNo ?? ""}
            </span>
            <span class="diff-sign" aria-hidden="true">
              {SIGN[l.kind]}
            </span>
            <span class="sr-only">{SR[l.kind]}</span>
            <span class="diff-text">{l.text}</span>
          </div>
        ))}
      </pre>
    </figure>
  );
}
