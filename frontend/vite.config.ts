import { defineConfig } from "vitest/config";

// The aggregator serves dist/ at "/" in production; in development Vite serves the app and
// forwards the API and the live websocket to a local aggregator on its default port.
const AGGREGATOR = "http://127.0.0.1:9800";

export default defineConfig({
  base: "/",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  server: {
    proxy: {
      "/api": { target: AGGREGATOR, changeOrigin: false },
      "/ws": { target: AGGREGATOR.replace("http", "ws"), ws: true },
    },
  },
  build: {
    target: "es2022",
    sourcemap: false,
    chunkSizeWarningLimit: 400,
  },
  test: {
    environment: "node",
    include: ["src/**/*.test.ts"],
  },
});
