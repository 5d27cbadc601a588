"""The limiters' arithmetic and memory: token buckets and per-order windows, on a fake clock."""

from __future__ import annotations

import pytest

from payments_service.application.order_limit import OrderAttempts
from payments_service.domain.errors import RateLimitedError
from payments_service.security.authenticator import peer_address
from payments_service.security.throttle import Buckets


def test_a_bucket_gives_its_burst_then_one_token_per_interval() -> None:
    buckets = Buckets(rate=4.0, burst=2, max_keys=10)
    assert [buckets.take("m", 0.0) for _ in range(3)] == [0.0, 0.0, 0.25]
    assert buckets.wait("m", 0.1) == pytest.approx(0.15)
    assert buckets.take("m", 0.25) == 0.0  # refilled, taken
    assert buckets.take("m", 0.25) == pytest.approx(0.25)
    assert buckets.take("m", 10.0) == 0.0  # refills to the burst, no further
    assert buckets.take("m", 10.0) == 0.0
    assert buckets.take("m", 10.0) > 0


def test_a_key_never_seen_waits_for_nothing_and_keys_are_independent() -> None:
    buckets = Buckets(rate=1.0, burst=1, max_keys=10)
    assert buckets.wait("new", 0.0) == 0.0
    assert buckets.take("a", 0.0) == 0.0
    assert buckets.take("a", 0.0) == 1.0
    assert buckets.take("b", 0.0) == 0.0


def test_buckets_past_their_cap_forget_the_least_recently_used_and_count_it() -> None:
    buckets = Buckets(rate=1.0, burst=1, max_keys=3)
    for n in range(1_000):
        buckets.take(f"peer-{n}", float(n))
    assert (len(buckets), buckets.evicted) == (3, 997)


@pytest.mark.parametrize(("rate", "burst", "max_keys"), [(0.0, 1, 1), (1.0, 0, 1), (1.0, 1, 0)])
def test_a_bucket_needs_positive_numbers(rate: float, burst: int, max_keys: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        Buckets(rate=rate, burst=burst, max_keys=max_keys)


def test_the_eleventh_new_key_in_a_minute_is_refused_until_the_oldest_leaves() -> None:
    orders = OrderAttempts(per_window=10, max_windows=100)
    for n in range(10):
        reservation = orders.admit("m", "o", f"k-{n}", now=float(n))
        assert reservation is not None
        reservation.commit()
    with pytest.raises(RateLimitedError) as refused:
        orders.admit("m", "o", "k-10", now=30.0)
    assert (refused.value.scope, refused.value.retry_after) == ("order", 30.0)
    assert orders.admit("m", "o", "k-3", now=30.0) is None  # a replay: admitted, not counted
    assert orders.admit("m", "other-order", "k-10", now=30.0) is not None
    assert orders.admit("m", "o", "k-10", now=60.0) is not None  # k-0 left the window


def test_a_replay_or_a_failed_claim_frees_its_place() -> None:
    orders = OrderAttempts(per_window=1, max_windows=10)
    reservation = orders.admit("m", "o", "k-1", now=0.0)
    assert reservation is not None
    reservation.release()  # the claim found an earlier payment (or failed)
    kept = orders.admit("m", "o", "k-2", now=0.0)
    assert kept is not None
    kept.commit()
    kept.release()  # a committed place stays
    with pytest.raises(RateLimitedError):
        orders.admit("m", "o", "k-3", now=0.0)


def test_concurrent_new_keys_cannot_overshoot_the_limit() -> None:
    """Places are reserved before the claim: the ones still claiming count."""
    orders = OrderAttempts(per_window=2, max_windows=10)
    held = [orders.admit("m", "o", f"k-{n}", now=0.0) for n in range(2)]
    assert None not in held
    with pytest.raises(RateLimitedError):
        orders.admit("m", "o", "k-2", now=0.0)


def test_a_hundred_thousand_orders_keep_the_windows_at_their_cap() -> None:
    orders = OrderAttempts(per_window=10, max_windows=1_000)
    for n in range(100_000):
        reservation = orders.admit("m", f"order-{n}", f"k-{n}", now=n / 1000)
        assert reservation is not None
        reservation.commit()
    assert (len(orders), orders.evicted) == (1_000, 99_000)


def test_an_order_window_needs_positive_numbers() -> None:
    with pytest.raises(ValueError, match="positive"):
        OrderAttempts(per_window=0, max_windows=1)


@pytest.mark.parametrize(
    ("peer", "address"),
    [
        ("ipv4:10.0.0.1:5000", "ipv4:10.0.0.1"),
        ("ipv6:[::1]:5000", "ipv6:[::1]"),
        ("unix:/run/payments.sock", "unix:/run/payments.sock"),
        ("", ""),
    ],
)
def test_a_peer_address_leaves_the_port_out(peer: str, address: str) -> None:
    assert peer_address(peer) == address
