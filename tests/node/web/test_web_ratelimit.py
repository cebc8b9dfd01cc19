"""Walk-in key creation is rate-limited per client address and hub-wide (429 with
Retry-After); the operator never is. Time is a clock the test moves, never a sleep."""

from __future__ import annotations

import itertools

from craftnet.node.web.ratelimit import WalkInLimit
from tests.node.web.web_hub import Hub

STRONG = "river kiln heddle lantern"


class Clock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_buckets_per_address_and_for_the_hub() -> None:
    clock = Clock()
    limit = WalkInLimit((3, 600.0), (5, 60.0), clock=clock)
    assert [limit.take("10.0.0.7") for _ in range(3)] == [None, None, None]
    assert limit.take("10.0.0.7") == 600  # this address waits a token's time
    assert limit.take("10.0.0.8") is None and limit.take("10.0.0.9") is None
    assert limit.take("10.0.0.10") == 60  # the hub's bucket is empty: everyone waits
    clock.now += 60
    assert limit.take("10.0.0.10") is None
    assert limit.take("10.0.0.7") == 540  # refilled by time, not by asking
    clock.now += 600
    assert limit.take("10.0.0.7") is None


def test_a_refused_request_takes_no_token() -> None:
    clock = Clock()
    limit = WalkInLimit((1, 100.0), (10, 1.0), clock=clock)
    assert limit.take("a") is None
    assert [limit.take("a") for _ in range(5)] == [100] * 5
    clock.now += 100
    assert limit.take("a") is None


def test_forgotten_addresses_are_bounded() -> None:
    limit = WalkInLimit((1, 1e9), (10**6, 1e-9), clock=Clock(), max_addresses=100)
    for n in range(1000):
        assert limit.take(f"10.1.{n // 256}.{n % 256}") is None
    assert len(limit._addresses) == 100


def test_walk_ins_get_429_with_retry_after_and_the_operator_does_not(hub: Hub) -> None:
    hub.request("PUT", "/api/v1/policy", {"walk_in_keys": True}, auth=True)
    clock = Clock()
    hub.ctx.walk_ins = WalkInLimit((2, 300.0), (50, 1.0), clock=clock)
    handles = (f"walkin{n}" for n in itertools.count())
    made = [hub.request("POST", "/api/v1/keys", {"handle": next(handles), "passphrase": STRONG})
            for _ in range(2)]
    assert [r.status for r in made] == [201, 201]
    keys_before = len(hub.get("/api/v1/keys").json()["artisans"])
    refused = hub.request("POST", "/api/v1/keys", {"handle": next(handles), "passphrase": STRONG})
    assert (refused.status, refused.error_code) == (429, "too-many-requests")
    assert refused.headers["retry-after"] == "300"
    brought = hub.request(
        "POST",
        "/api/v1/keys/import",
        {"handle": next(handles), "passphrase": STRONG, "key_file": "{}",
         "export_passphrase": "anything"},
    )
    assert (brought.status, brought.error_code) == (429, "too-many-requests")
    assert len(hub.get("/api/v1/keys").json()["artisans"]) == keys_before
    # A weak passphrase is refused before any token is taken (no scrypt was run).
    weak = hub.request("POST", "/api/v1/keys", {"handle": next(handles), "passphrase": "1234"})
    assert (weak.status, weak.error_code) == (422, "weak-passphrase")
    operator = hub.post("/api/v1/keys", {"handle": next(handles), "passphrase": STRONG})
    assert operator.status == 201
    clock.now += 300
    again = hub.request("POST", "/api/v1/keys", {"handle": next(handles), "passphrase": STRONG})
    assert again.status == 201
