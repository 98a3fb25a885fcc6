import { AppContext, useApp, type AppState } from "./state/app";
import { ConnectionBanner, Toasts } from "./components/Banner";
import { Spinner } from "./components/bits";
import { LoginView } from "./views/LoginView";
import { DashboardView } from "./views/DashboardView";
import { UnitView } from "./views/UnitView";
import { RunsView } from "./views/RunsView";
import { RunView } from "./views/RunView";
import { AlarmsView } from "./views/AlarmsView";
import { SettingsView } from "./views/SettingsView";
import { MethodsView } from "./views/MethodsView";
import { LibraryMethodView } from "./views/LibraryMethodView";
import { AuditView } from "./views/AuditView";
import { AlarmBanner } from "./components/AlarmBanner";
import { createAlarmStore } from "./state/alarms";
import { useEffect, useMemo } from "preact/hooks";

export function App({ app }: { app: AppState }) {
  return (
    <AppContext.Provider value={app}>
      <Shell />
    </AppContext.Provider>
  );
}

function Shell() {
  const app = useApp();
  if (!app.authChecked.value) return <Spinner />;
  const user = app.user.value;
  if (!user) return <LoginView />;
  return <LoggedIn key={user.name} />;
}

function LoggedIn() {
  const app = useApp();
  const user = app.user.value!;
  const route = app.route.value;
  const alarms = useMemo(() => createAlarmStore(app.live), [app]);
  useEffect(() => () => alarms.stop(), [alarms]);
  return (
    <>
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <header class="topbar">
        <a class="brand" href="#/">
          Setpoint
        </a>
        <nav aria-label="Main">
          <a href="#/" aria-current={route.name === "dashboard" || route.name === "unit" ? "page" : undefined}>
            Units
          </a>
          <a href="#/runs" aria-current={route.name === "runs" || route.name === "run" ? "page" : undefined}>
            Run history
          </a>
          <a href="#/methods" aria-current={route.name === "methods" || route.name === "method" ? "page" : undefined}>
            Methods
          </a>
          <a href="#/alarms" aria-current={route.name === "alarms" ? "page" : undefined}>
            Alarms
          </a>
          <a href="#/settings" aria-current={route.name === "settings" ? "page" : undefined}>
            Notifications
          </a>
          {user.role === "admin" && (
            <a href="#/audit" aria-current={route.name === "audit" ? "page" : undefined}>
              Audit
            </a>
          )}
        </nav>
        <div class="who">
          <span data-testid="user-name">
            {user.name} <span class="muted">({user.role})</span>
          </span>
          <button type="button" class="btn btn-small" onClick={() => void app.signOut()}>
            Log out
          </button>
        </div>
      </header>
      <ConnectionBanner />
      <AlarmBanner store={alarms} />
      <main id="main" tabIndex={-1}>
        {route.name === "dashboard" && <DashboardView />}
        {route.name === "unit" && <UnitView key={route.id} id={route.id} />}
        {route.name === "runs" && <RunsView q={route.q} unit={route.unit} />}
        {route.name === "run" && <RunView key={route.id} id={route.id} />}
        {route.name === "alarms" && <AlarmsView store={alarms} />}
        {route.name === "settings" && <SettingsView />}
        {route.name === "methods" && <MethodsView />}
        {route.name === "method" && <LibraryMethodView key={route.id} id={route.id} />}
        {route.name === "audit" && <AuditView />}
        {route.name === "notFound" && (
          <section class="panel">
            <h1>Page not found</h1>
            <p>
              Nothing lives at <code>{route.path}</code>. <a href="#/">Back to the units</a>.
            </p>
          </section>
        )}
      </main>
      <Toasts />
    </>
  );
}
