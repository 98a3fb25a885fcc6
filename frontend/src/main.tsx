import { render } from "preact";
import { createApi } from "./api";
import { LiveClient, liveUrl, openBrowserSocket } from "./ws";
import { createAppState } from "./state/app";
import { parseRoute } from "./state/route";
import { App } from "./App";
import "./styles.css";

const api = createApi();
const app = createAppState(
  api,
  (onStatus) => new LiveClient({ url: liveUrl(location), createSocket: openBrowserSocket, onStatus }),
);

window.addEventListener("hashchange", () => {
  app.route.value = parseRoute(location.hash);
});
setInterval(() => {
  app.now.value = Date.now() / 1000;
}, 1000);

api
  .me()
  .then((user) => app.signIn(user))
  .catch(() => {})
  .finally(() => {
    app.authChecked.value = true;
  });

render(<App app={app} />, document.getElementById("app")!);
