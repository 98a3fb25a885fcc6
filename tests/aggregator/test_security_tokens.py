from __future__ import annotations

from aggregator.security import new_token, token_hash


def test_tokens_are_prefixed_random_and_safe_as_arguments() -> None:
    tokens = {new_token() for _ in range(200)}
    assert len(tokens) == 200
    assert all(t.startswith("spt_") and len(t) > 40 for t in tokens)
    assert len({token_hash(t) for t in tokens}) == 200
