"""The live websocket for browsers and scripts (`/ws`): topics, per-client queues, tasks.

Named `ws` rather than `live` because `aggregator/live.py` holds the engines' live state that
this package subscribes to.
"""
