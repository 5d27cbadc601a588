"""Composition root: the one place that chooses adapters and wires them together."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from payments_service.application.service import PaymentService
from payments_service.application.system import RandomPaymentIds, SystemClock
from payments_service.processor.simulated import SimulatedProcessor
from payments_service.storage.memory import InMemoryPaymentRepository
from payments_service.transport.errors import ErrorMappingInterceptor
from payments_service.transport.interceptors.request_id import RequestIdInterceptor

if TYPE_CHECKING:
    import grpc

    from payments_service.config import Settings
    from payments_service.domain.ports import (
        Clock,
        IdGenerator,
        PaymentProcessor,
        PaymentRepository,
    )


def build_service(
    settings: Settings,
    *,
    clock: Clock | None = None,
    ids: IdGenerator | None = None,
    repository: PaymentRepository | None = None,
    processor: PaymentProcessor | None = None,
) -> PaymentService:
    """The application service with the default adapters; tests pass their own ports."""
    # `is None`, not `or`: an empty repository is falsy (it has __len__).
    if clock is None:
        clock = SystemClock()
    if repository is None:
        ttl = timedelta(seconds=settings.idempotency_ttl_seconds)
        repository = InMemoryPaymentRepository(ttl=ttl, clock=clock)
    if processor is None:
        processor = SimulatedProcessor(slow_delay=settings.simulated_slow_seconds)
    return PaymentService(
        repository=repository,
        processor=processor,
        clock=clock,
        ids=RandomPaymentIds() if ids is None else ids,
        processor_timeout=settings.processor_timeout_seconds,
    )


def build_interceptors() -> list[grpc.aio.ServerInterceptor[Any, Any]]:
    """The server interceptor chain, outermost first.

    1. RequestIdInterceptor: binds the request id before anything logs.
    2. ErrorMappingInterceptor: innermost, so every interceptor outside it sees the final status
       code on the context instead of a raw exception, and nothing bypasses the mapping.
    """
    return [RequestIdInterceptor(), ErrorMappingInterceptor()]
