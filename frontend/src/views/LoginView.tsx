import { useState } from "preact/hooks";
import { useApp } from "../state/app";
import { ApiError } from "../api";

export function LoginView() {
  const app = useApp();
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const r = await app.api.login(username, password);
      app.signIn(r.user);
    } catch (err) {
      setError(err instanceof ApiError && err.status === 401 ? "Wrong user name or password." : err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="login" id="main">
      <form class="panel login-form" onSubmit={submit} aria-labelledby="login-title">
        <h1 id="login-title">Setpoint</h1>
        <p class="muted">Sign in to monitor and control your units.</p>
        <label for="login-user">User name</label>
        <input id="login-user" name="username" autoComplete="username" required value={username} onInput={(e) => setUsername(e.currentTarget.value)} autoFocus />
        <label for="login-password">Password</label>
        <input id="login-password" name="password" type="password" autoComplete="current-password" required value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
        {error && (
          <p class="error-text" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="btn btn-primary" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
