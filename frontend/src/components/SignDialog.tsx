// Signing a method version or a run: the meaning is stated, and the password is asked every time
// (21 CFR 11.200: a session alone signs nothing). The server checks it and every rule again.

import { useState } from "preact/hooks";
import { useApp } from "../state/app";
import { MEANING_LABEL, sign, type Meaning, type Signature, type SignRecord } from "../lib/regulated";
import { Dialog } from "./Dialog";

interface Props {
  record: SignRecord;
  /** what is signed, as the signer reads it: "method Wash version 2", "run 17" */
  label: string;
  meaning: Meaning;
  onSigned: (s: Signature) => void;
  onCancel: () => void;
}

export function SignDialog({ record, label, meaning, onSigned, onCancel }: Props) {
  const app = useApp();
  const [password, setPassword] = useState("");
  const [comment, setComment] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const user = app.user.value?.name ?? "";

  async function submit(e?: Event) {
    e?.preventDefault();
    if (!password) {
      setError("Enter your password to sign.");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const s = await sign(app.api, record, meaning, password, comment);
      onSigned(s);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
      setPassword("");
    } finally {
      setBusy(false);
    }
  }

  return (
    <Dialog
      title={`Sign ${label} as ${MEANING_LABEL[meaning]}`}
      onClose={onCancel}
      actions={
        <>
          <button type="button" class="btn" onClick={onCancel}>
            Cancel
          </button>
          <button type="submit" form="sign-form" class="btn btn-primary" disabled={busy} data-testid="sign-submit">
            {busy ? "Signing…" : "Sign"}
          </button>
        </>
      }
    >
      <form id="sign-form" class="sign-form" onSubmit={(e) => void submit(e)}>
        <p>
          You, <strong>{user}</strong>, sign <strong>{label}</strong> with the meaning <strong>{meaning}</strong>. Your
          printed name, this meaning and the time (UTC) are stored with the signature and shown wherever the record is.
        </p>
        <label>
          Password
          <input
            type="password"
            autocomplete="current-password"
            value={password}
            data-autofocus
            required
            onInput={(e) => setPassword((e.target as HTMLInputElement).value)}
          />
        </label>
        <label>
          Comment (optional)
          <input type="text" value={comment} maxLength={1000} onInput={(e) => setComment((e.target as HTMLInputElement).value)} />
        </label>
        {error && (
          <p class="error-text" role="alert" data-testid="sign-error">
            {error}
          </p>
        )}
      </form>
    </Dialog>
  );
}

/** A signature's manifestation (11.50): printed name, meaning, UTC time; and whether it still holds. */
export function SignatureLine({ s }: { s: Signature }) {
  return (
    <span class="signature" data-testid="signature" data-meaning={s.meaning} data-user={s.user}>
      <span data-field="full_name">{s.full_name}</span> (<span class="mono">{s.user}</span>),{" "}
      <span data-field="meaning">{s.meaning}</span>, <span data-field="time_utc">{s.time_utc}</span>
      {s.comment ? <span class="muted">: “{s.comment}”</span> : null}{" "}
      {s.valid === false ? (
        <span class="badge st-error" title={s.reason}>
          invalid: {s.reason}
        </span>
      ) : s.valid ? (
        <span class="badge sig-valid">valid</span>
      ) : null}
    </span>
  );
}
