"""The Setpoint aggregator: one server that many engines report to and people use through a
browser (`setpoint-aggregator serve|user|engine-token|run|audit|...`).

What lives here:

- app.py builds the aiohttp application around context.py (what the app owns, no module
  globals); web.py serves the built UI; metrics.py the Prometheus endpoint.
- engine_ws.py: an engine's link (`/engine`), with ingest_session.py (dedup, gaps, acks),
  writer.py (group commit), budget.py, clock_offsets.py and engine_tokens.py (revocation);
  live.py: every engine's live state.
- Storage: db.py and models.py (tables; migrations/ is Alembic), chunks.py and decimate.py
  (sample encoding and plot decimation); audit.py and audit_export.py; run_export.py; security.py.
- cli.py with cli_run.py, cli_tokens.py and cli_records.py: the command line.
- Sub-packages: api (HTTP /api), ws (browser /ws), store (database work), notify, opcua, report.

Who may import it: its own modules, its console script and tests. It imports `protocol` and
never `engine` (engine -> protocol <- aggregator); the engine never imports it.
"""
