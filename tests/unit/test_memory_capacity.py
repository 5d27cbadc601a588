"""The in-memory store's byte budget: accounting, refusal at capacity, what still works."""

from __future__ import annotations

import sys
from datetime import timedelta
from types import MappingProxyType

import pytest

from payments_service.adapters.stores.memory import (
    CLAIM_EVICTION_BATCH,
    ENTRY_OVERHEAD_BYTES,
    MAX_RETRY_SECONDS,
    METADATA_ITEM_OVERHEAD_BYTES,
    MIN_RETRY_SECONDS,
    InMemoryPaymentRepository,
    payment_size,
)
from payments_service.domain.errors import StoreFullError
from payments_service.domain.model import Payment, PaymentRequest
from payments_service.domain.ports import StoreStats
from tests.fakes import FakeClock
from tests.unit.test_memory_repository import PENDING, SUCCEEDED, make_payment

TTL = timedelta(hours=1)
EMOJI = "\U0001f600"


def largest(clock: FakeClock, payment_id: str, key: str) -> Payment:
    """The largest valid payment: 20 entries of 40-char keys and 500 four-byte characters."""
    metadata = {f"{i:02d}" + "m" * 38: EMOJI * 500 for i in range(20)}
    request = PaymentRequest(
        100, "EUR", "o" * 128, key, MappingProxyType(metadata), merchant_id="default"
    )
    now = clock.now()
    return Payment(payment_id, request, request.fingerprint(), now, now, SUCCEEDED, SUCCEEDED)


def store_for(clock: FakeClock, payments: int) -> InMemoryPaymentRepository:
    """A store whose cap holds `payments` finished payments of make_payment's shape (ids and
    keys up to two digits) and not one more."""
    one = payment_size(make_payment(clock, "pay_99", key="key-99"))
    return InMemoryPaymentRepository(ttl=TTL, clock=clock, max_bytes=payments * one)


def test_strings_count_by_their_size_in_memory_not_their_utf8_length(clock: FakeClock) -> None:
    # 499 ASCII characters and one emoji: 503 UTF-8 bytes, but CPython stores all 500
    # characters at four bytes each. Counting UTF-8 would let such payloads overrun the cap.
    mixed = "a" * 499 + EMOJI
    request = PaymentRequest(
        100, "EUR", "o", "k", MappingProxyType({"note": mixed}), merchant_id="default"
    )
    now = clock.now()
    payment = Payment("pay_1", request, request.fingerprint(), now, now, SUCCEEDED, SUCCEEDED)
    bare = PaymentRequest(100, "EUR", "o", "k", merchant_id="default")
    plain = Payment("pay_1", bare, request.fingerprint(), now, now, SUCCEEDED, SUCCEEDED)
    assert payment_size(payment) - payment_size(plain) >= 4 * 500
    assert len(mixed.encode()) == 503


def test_the_size_is_strings_plus_per_entry_and_per_metadata_item_overheads(
    clock: FakeClock,
) -> None:
    payment = largest(clock, "pay_1", "k" * 255)
    strings = [
        payment.payment_id,
        payment.fingerprint,
        "EUR",
        "o" * 128,
        "k" * 255,
        SUCCEEDED.message,
        SUCCEEDED.message,
        *payment.request.metadata.keys(),
        *payment.request.metadata.values(),
    ]
    assert payment_size(payment) == (
        ENTRY_OVERHEAD_BYTES
        + 20 * METADATA_ITEM_OVERHEAD_BYTES
        + sum(sys.getsizeof(s) for s in strings)
    )
    assert 45_000 < payment_size(payment) < 48 * 1024  # the audit measured ~47 KiB


async def test_accounted_bytes_follow_claims_records_and_evictions(clock: FakeClock) -> None:
    repository = InMemoryPaymentRepository(ttl=TTL, clock=clock, max_bytes=10**6)
    claimed = make_payment(clock, "pay_1", settled=False)
    await repository.claim(claimed)
    assert repository.stats() == StoreStats(1, payment_size(claimed), 10**6, 0)
    recorded = await repository.record(
        "pay_1", at=clock.now(), outcome=SUCCEEDED, first_response=PENDING
    )
    assert repository.stats().bytes_used == payment_size(recorded) > payment_size(claimed)
    clock.advance(TTL.total_seconds())
    assert await repository.purge_expired(limit=10) == 1
    assert repository.stats() == StoreStats(0, 0, 10**6, 0)


async def test_a_new_payment_that_does_not_fit_is_refused_and_nothing_is_stored(
    clock: FakeClock,
) -> None:
    repository = store_for(clock, 2)
    for i in range(2):
        await repository.claim(make_payment(clock, f"pay_{i}", key=f"key-{i}"))
    before = repository.stats()
    with pytest.raises(StoreFullError, match="store is full"):
        await repository.claim(make_payment(clock, "pay_2", key="key-2"))
    assert await repository.get("default", "pay_2") is None
    assert repository.stats() == StoreStats(2, before.bytes_used, before.max_bytes, 1)


async def test_replays_and_lookups_keep_working_when_full(clock: FakeClock) -> None:
    repository = store_for(clock, 1)
    await repository.claim(make_payment(clock, "pay_0", key="key-0"))
    replay = await repository.claim(make_payment(clock, "pay_9", key="key-0"))
    assert (replay.created, replay.payment.payment_id) == (False, "pay_0")
    assert await repository.get("default", "pay_0") is not None
    assert repository.stats().rejected_full == 0


async def test_a_full_store_evicts_every_expired_payment_before_refusing(
    clock: FakeClock,
) -> None:
    repository = store_for(clock, 20)  # more than one claim's eviction batch
    for i in range(20):
        await repository.claim(make_payment(clock, f"pay_{i}", key=f"key-{i}"))
    clock.advance(TTL.total_seconds())
    for i in range(20, 40):  # each fits only because the expired ones went first
        assert (await repository.claim(make_payment(clock, f"pay_{i}", key=f"key-{i}"))).created
    assert repository.stats().rejected_full == 0
    assert len(repository) == 20


async def test_a_settling_payment_keeps_its_room_until_it_finishes(clock: FakeClock) -> None:
    repository = store_for(clock, 1)
    await repository.claim(make_payment(clock, "pay_0", key="key-0", settled=False))
    clock.advance(TTL.total_seconds())
    with pytest.raises(StoreFullError) as full:
        await repository.claim(make_payment(clock, "pay_1", key="key-1"))
    assert full.value.retry_after == MIN_RETRY_SECONDS  # frees as soon as it settles
    await repository.record("pay_0", at=clock.now(), outcome=SUCCEEDED, first_response=SUCCEEDED)
    assert (await repository.claim(make_payment(clock, "pay_1", key="key-1"))).created


@pytest.mark.parametrize(
    ("ttl_seconds", "elapsed", "retry_after"),
    [
        (60, 20, 40),  # the time until the oldest payment expires
        (3600 * 24, 0, MAX_RETRY_SECONDS),  # never "come back tomorrow"
        (60, 59.5, MIN_RETRY_SECONDS),  # never "retry at once"
    ],
)
async def test_retry_after_is_the_time_until_the_oldest_expires_within_bounds(
    clock: FakeClock, ttl_seconds: float, elapsed: float, retry_after: float
) -> None:
    one = payment_size(make_payment(clock, "pay_0", key="key-0"))
    repository = InMemoryPaymentRepository(
        ttl=timedelta(seconds=ttl_seconds), clock=clock, max_bytes=one
    )
    await repository.claim(make_payment(clock, "pay_0", key="key-0"))
    clock.advance(elapsed)
    with pytest.raises(StoreFullError) as full:
        await repository.claim(make_payment(clock, "pay_1", key="key-1"))
    assert full.value.retry_after == pytest.approx(retry_after)


async def test_a_store_without_a_cap_never_refuses_and_reports_cap_zero(
    clock: FakeClock,
) -> None:
    repository = InMemoryPaymentRepository(ttl=TTL, clock=clock)
    for i in range(50):
        await repository.claim(largest(clock, f"pay_{i}", f"key-{i}"))
    assert repository.stats().max_bytes == 0
    assert len(repository) == 50


async def test_a_large_new_payment_makes_room_by_evicting_every_expired_one(
    clock: FakeClock,
) -> None:
    # Every small expired payment must go for one of the largest to fit: far more than the
    # few a claim evicts on its way.
    big = largest(clock, "pay_big", "key-big")
    small = payment_size(make_payment(clock, "pay_99", key="key-99"))
    repository = InMemoryPaymentRepository(ttl=TTL, clock=clock, max_bytes=payment_size(big))
    count = payment_size(big) // small
    for i in range(count):
        await repository.claim(make_payment(clock, f"pay_{i}", key=f"key-{i}"))
    assert count > 4 * CLAIM_EVICTION_BATCH
    clock.advance(TTL.total_seconds())
    assert (await repository.claim(big)).created
    assert len(repository) == 1
