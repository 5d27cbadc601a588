"""The integration suite runs once per store: memory and SQLite (a fresh file per test)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from payments_service.application.service import PaymentService
from payments_service.bootstrap import build_service
from payments_service.domain.ports import PaymentRepository
from tests.conftest import TEST_SETTINGS, ApiFactory
from tests.fakes import FakeClock, SequentialIds
from tests.stores import open_repository


@pytest.fixture(params=["memory", "sqlite"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[PaymentRepository]:
    ttl = timedelta(seconds=TEST_SETTINGS.idempotency_ttl_seconds)
    async with open_repository(request.param, tmp_path, clock, ttl) as repository:
        yield repository


@pytest.fixture
async def api_factory(store: PaymentRepository, api_factory: ApiFactory) -> ApiFactory:
    """The shared factory, set up after the store so servers drain before the store closes."""
    return api_factory


@pytest.fixture
def service(clock: FakeClock, ids: SequentialIds, store: PaymentRepository) -> PaymentService:
    return build_service(TEST_SETTINGS, clock=clock, ids=ids, repository=store)
