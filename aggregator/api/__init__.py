"""The HTTP API under /api, and what /ws shares with it.

What lives here: the route registry that serves and documents every operation (openapi.py,
openapi_doc.py) with its cross-site check (origin.py) and refusal audit (refusals.py), the one
error type and the middleware that renders it (errors.py), login throttling (throttle.py), the areas'
handlers (auth, units_api, runs_api with runs_csv, admin_api), the logic HTTP and /ws share
(service.py, actions.py, commands.py, plot.py, roles.py, schemas.py), and /ws's backend and
live bridge (ws_backend.py, bridge.py). routes.setup_api_routes wires it all into an app.

Who may import it: aggregator.app (the application factory) and tests. It imports the rest of
the aggregator (context, store, models, audit, security, live, ws, web) and protocol, never
engine (engine -> protocol <- aggregator); aggregator.ws must not import it (it gets a Backend).
"""
