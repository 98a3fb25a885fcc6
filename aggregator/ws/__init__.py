"""The live websocket for browsers and scripts (`/ws`): topics, per-client queues, tasks.

Named `ws` rather than `live` because `aggregator/live.py` holds the engines' live state that
this package subscribes to.

Who may import it: aggregator.api (routes, service, ws_backend, simulate_api), which hands it a
Backend. It must not import aggregator.api, the store or engine; beyond its own modules it uses
only aggregator.budget and protocol.validation.
"""
