// A run's record in the run view: the batch report (HTML and PDF), its signatures, and Review and
// Release, which ask for the password (the server refuses both while the run goes on).

import { useEffect, useState } from "preact/hooks";
import { useApp } from "../state/app";
import { releaseOf, reportUrl, runSignatures, type Meaning, type Signature } from "../lib/regulated";
import { SignDialog, SignatureLine } from "./SignDialog";

export function RunRecord({ runId, stopped }: { runId: string; stopped: boolean }) {
  const app = useApp();
  const [sigs, setSigs] = useState<Signature[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [signing, setSigning] = useState<Meaning | null>(null);
  const reload = () =>
    runSignatures(app.api, runId)
      .then(setSigs)
      .catch((e: Error) => setError(e.message));
  useEffect(() => void reload(), [runId]);

  const role = app.user.value?.role;
  const canSign = role === "operator" || role === "admin";
  const released = sigs ? releaseOf(sigs) : null;
  const why = !stopped ? "The run is still going on: it is reviewed and released once it stopped." : null;

  return (
    <section class="panel run-record" aria-labelledby="record-title" data-testid="run-record">
      <h2 id="record-title">Batch record</h2>
      <p data-testid="release-status">
        {released ? (
          <strong>
            Released by <span data-field="full_name">{released.full_name}</span> (<span data-field="user">{released.user}</span>)
            at <span data-field="time_utc">{released.time_utc}</span>
          </strong>
        ) : (
          <span>Not released</span>
        )}
      </p>
      <p class="report-links">
        <a class="btn" href={reportUrl(runId, false)} target="_blank" rel="noopener">
          Batch report (HTML)
        </a>{" "}
        <a class="btn" href={reportUrl(runId, true)} download>
          Batch report (PDF)
        </a>
      </p>
      {canSign && (
        <p class="row-actions">
          <button type="button" class="btn" disabled={!stopped} onClick={() => setSigning("reviewed")}>
            Review
          </button>{" "}
          <button type="button" class="btn btn-primary" disabled={!stopped || !!released} onClick={() => setSigning("released")}>
            Release
          </button>
          {why && <span class="small muted"> {why}</span>}
        </p>
      )}
      <h3>Signatures</h3>
      {error ? (
        <p class="error-text" role="alert">
          {error}
        </p>
      ) : !sigs ? (
        <p class="muted">Loading…</p>
      ) : sigs.length === 0 ? (
        <p class="muted">None yet.</p>
      ) : (
        <ul class="plain-list" data-testid="run-signatures">
          {sigs.map((s) => (
            <li key={s.id}>
              <SignatureLine s={s} />
            </li>
          ))}
        </ul>
      )}
      {signing && (
        <SignDialog
          record={{ kind: "run", id: runId }}
          label={`run ${runId}`}
          meaning={signing}
          onCancel={() => setSigning(null)}
          onSigned={(s) => {
            setSigning(null);
            app.notify("success", `Signed ${s.label} as ${s.meaning}`);
            void reload();
          }}
        />
      )}
    </section>
  );
}
