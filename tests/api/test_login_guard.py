"""Login throttling per user and per address, equal argon2 work for unknown names, and the one
password policy of the API and the CLI (issue 13 item 4)."""

from __future__ import annotations

from typing import Any

import pytest
from argon2 import PasswordHasher

from aggregator.api.service import API_STATE_KEY
from aggregator.api.throttle import LoginThrottle
from aggregator.security import password_problem
from tests.api.conftest import PASSWORD, Api

# --- the throttle itself, driven by a clock of our own ------------------------------------------


def test_five_failures_lock_and_the_lock_doubles_up_to_fifteen_minutes() -> None:
    throttle = LoginThrottle()
    keys = ["user ann"]
    for i in range(4):
        assert throttle.failure(keys, float(i)) == []
        assert throttle.retry_after(keys, float(i)) == 0
    [lock] = throttle.failure(keys, 4.0)
    assert lock.seconds == 30 and lock.failures == 5
    assert throttle.retry_after(keys, 4.0) == 30
    assert throttle.retry_after(keys, 33.5) == pytest.approx(0.5)
    now, locks = 34.0, []
    for _ in range(8):
        [lock] = throttle.failure(keys, now)
        locks.append(lock.seconds)
        now += lock.seconds
    assert locks == [60, 120, 240, 480, 900, 900, 900, 900]


def test_success_resets_and_keys_are_independent() -> None:
    throttle = LoginThrottle()
    for t in range(5):
        throttle.failure(["user ann", "address 10.0.0.1"], float(t))
    assert throttle.retry_after(["user bob", "address 10.0.0.2"], 5.0) == 0
    assert throttle.retry_after(["user bob", "address 10.0.0.1"], 5.0) == 29  # locked at 4
    throttle.success(["user ann", "address 10.0.0.1"])
    assert throttle.retry_after(["user ann", "address 10.0.0.1"], 5.0) == 0
    assert throttle.failure(["user ann"], 6.0) == []  # counting starts again


def test_memory_is_bounded_and_old_failures_are_forgotten() -> None:
    throttle = LoginThrottle(max_keys=100, forget=3600)
    for i in range(1000):
        throttle.failure([f"user made-up-{i}"], float(i))
    assert len(throttle) == 100
    for t in range(4):
        throttle.failure(["user ann"], 2000.0 + t)
    assert throttle.failure(["user ann"], 2003.0 + 3601) == []  # an hour later: a fresh start


# --- over HTTP -----------------------------------------------------------------------------------


async def login(api: Api, name: str, password: str, **headers: str) -> tuple[int, Any, Any]:
    async with api.http.post(
        f"{api.url}/api/auth/login",
        json={"username": name, "password": password},
        headers=headers,
    ) as r:
        return r.status, r.headers.get("Retry-After"), await r.json()


async def test_sixth_attempt_gets_429_until_the_lock_ends(api: Api) -> None:
    state = api.agg.app[API_STATE_KEY]
    now = [1000.0]
    state.throttle_clock = lambda: now[0]
    name = api.names["viewer"]
    for _ in range(5):
        assert (await login(api, name, "wrong guess"))[0] == 401
    status, retry, body = await login(api, name, PASSWORD)  # even the right password
    assert status == 429 and retry == "30" and "try again in 30 s" in body["error"]
    now[0] += 31
    status, _, _ = await login(api, name, PASSWORD)
    assert status == 200
    assert (await login(api, name, "wrong again"))[0] == 401  # success reset the count

    _, page = await api.call("GET", "/api/audit?limit=100", "admin")
    lockouts = [e for e in page["items"] if e["action"] == "login lockout"]
    assert {e["new"]["locked"] for e in lockouts} == {f"user {name}", "address 127.0.0.1"}
    assert all(e["user"] == name and e["new"]["seconds"] == 30 for e in lockouts)


async def test_one_address_guessing_many_names_is_locked_too(api: Api) -> None:
    state = api.agg.app[API_STATE_KEY]
    state.throttle_clock = lambda: 50.0
    for i in range(5):
        assert (await login(api, f"nobody-{i}", "wrong guess"))[0] == 401
    status, retry, _ = await login(api, api.names["viewer"], PASSWORD)
    assert status == 429 and int(retry) == 30


async def test_forwarded_address_counts_only_when_trusted(api: Api) -> None:
    state = api.agg.app[API_STATE_KEY]
    state.throttle_clock = lambda: 50.0
    for i in range(5):
        await login(api, f"x-{i}", "wrong guess", **{"X-Forwarded-For": "10.9.9.9"})
    # not trusted (the default): the header is ignored, the peer address is locked
    assert (await login(api, "y", "wrong", **{"X-Forwarded-For": "10.1.1.1"}))[0] == 429


async def test_unknown_name_costs_the_same_argon2_work(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    verified: list[str] = []
    real = PasswordHasher.verify

    def counting(self: PasswordHasher, hash: str | bytes, password: str | bytes) -> bool:
        verified.append(hash if isinstance(hash, str) else hash.decode())
        return real(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting)
    assert (await login(api, "no-such-user", "wrong guess"))[0] == 401
    assert (await login(api, api.names["viewer"], "wrong guess"))[0] == 401
    assert len(verified) == 2
    params = [h.rsplit("$", 2)[0] for h in verified]  # "$argon2id$v=19$m=...,t=...,p=..."
    assert params[0] == params[1]


# --- password policy -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "words"),
    [
        ("short pw", "at least 12"),
        (" " * 14, "whitespace"),
        ("password1234", "too common"),
        ("Dragon!!2024", "too common"),
        ("monkeymonkey", "too common"),
    ],
)
async def test_the_api_refuses_weak_passwords(api: Api, password: str, words: str) -> None:
    assert password_problem(password) is not None
    status, body = await api.call(
        "POST", "/api/users", "admin", json={"name": "weak", "role": "viewer", "password": password}
    )
    assert status == 422 and words in body["error"] and body["field"] == "password"
    status, body = await api.call(
        "PATCH", f"/api/users/{api.names['viewer']}", "admin", json={"password": password}
    )
    assert status == 422 and words in body["error"]


async def test_the_demo_bypass_is_not_reachable_through_the_api(api: Api) -> None:
    for extra in ({"allow_weak_password": True}, {"allow-weak-password": True}):
        status, body = await api.call(
            "POST",
            "/api/users",
            "admin",
            json={"name": "demo", "role": "admin", "password": "demo", **extra},
        )
        assert status == 422, body
    status, _ = await api.call(
        "POST",
        "/api/users",
        "admin",
        json={"name": "fine", "role": "viewer", "password": "a long passphrase"},
    )
    assert status == 201
