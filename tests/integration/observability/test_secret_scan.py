"""The secret scan: the whole application (`build_app`: PostgreSQL store, API keys, tracing,
metrics, JSON logs) runs a representative set of calls with a planted API key and a planted
database password, including failures that log stacks, and neither secret appears in any log
line, exported span, metrics scrape or error a client receives."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import socket
import urllib.request
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import grpc
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from payments_service.adapters.stores.factory import StoreOpenTimeoutError, open_store
from payments_service.bootstrap import App
from payments_service.config import Settings
from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc
from payments_service.security.api_keys import KeyRing
from tests.apps import running_app
from tests.conftest import TEST_SETTINGS, CapturedLogs, payment_request
from tests.fakes import FakeClock
from tests.stores import postgres_schema

# Recognisable markers, so a scan finds any copy, whole or in part. The password has characters
# a URL must quote, so a percent-encoded copy would carry the marker too.
KEY_MARKER = "KEYPLANTED"
API_KEY = f"sk_live_{KEY_MARKER}bWVyY2hhbnQtc2VjcmV0"
PASSWORD_MARKER = "PWPLANTED"
PASSWORD = f"p@ss/{PASSWORD_MARKER}:w0rd"  # trust authentication on the test server ignores it
MARKERS = (KEY_MARKER, PASSWORD_MARKER)


def bearer(value: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", value),)


@pytest.fixture
async def running(
    tmp_path: Path, captured_logs: CapturedLogs
) -> AsyncIterator[tuple[App, InMemorySpanExporter]]:
    keys_file = tmp_path / "keys"
    keys_file.write_text(
        f"alice {hashlib.sha256(API_KEY.encode()).hexdigest()}\n"
        f"bob {hashlib.sha256(b'bob-key-not-planted').hexdigest()}\n"
    )
    async with postgres_schema() as location:
        settings = dataclasses.replace(
            TEST_SETTINGS,
            metrics_address="127.0.0.1:0",
            store=dataclasses.replace(location, password=PASSWORD),
            api_keys_file=str(keys_file),
        )
        exporter = InMemorySpanExporter()
        async with running_app(
            settings,
            log_writer=captured_logs.writer,
            keys=KeyRing.load(str(keys_file)),
            span_processors=(SimpleSpanProcessor(exporter),),
        ) as app:
            yield app, exporter


async def test_no_api_key_or_database_password_reaches_logs_spans_metrics_or_errors(
    running: tuple[App, InMemorySpanExporter], captured_logs: CapturedLogs
) -> None:
    app, exporter = running
    good = bearer(f"Bearer {API_KEY}")
    errors: list[grpc.aio.AioRpcError] = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.server.port}") as channel:
        stub = pb_grpc.PaymentServiceStub(channel)

        async def refused(call: Awaitable[object]) -> None:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await call
            errors.append(raised.value)

        created = await stub.RequestPayment(payment_request(), metadata=good)  # created
        await stub.RequestPayment(payment_request(), metadata=good)  # replayed
        slow = payment_request(idempotency_key="slow", metadata={"simulate": "slow"})
        pending = await stub.RequestPayment(slow, metadata=good)  # settles in the background
        await refused(stub.RequestPayment(payment_request(amount_minor=9), metadata=good))
        await refused(stub.RequestPayment(payment_request(currency="usd"), metadata=good))
        await stub.GetPayment(pb.GetPaymentRequest(payment_id=created.payment_id), metadata=good)
        bob = bearer("Bearer bob-key-not-planted")
        await refused(
            stub.GetPayment(pb.GetPaymentRequest(payment_id=created.payment_id), metadata=bob)
        )
        await refused(stub.GetPayment(pb.GetPaymentRequest(payment_id="bad"), metadata=good))
        for metadata in (
            bearer(f"Bearer {API_KEY}x"),  # unknown
            bearer(f"Bearer {API_KEY} {API_KEY}"),  # malformed
            bearer(API_KEY),  # no scheme
            (*good, *bearer(f"Bearer {API_KEY}y")),  # two headers
        ):
            await refused(stub.RequestPayment(payment_request(), metadata=metadata))
        assert await stub.Health(pb.HealthRequest(), metadata=good)
        # Wait for the slow payment to settle (its background span and log line).
        deadline = asyncio.get_running_loop().time() + 10
        while (
            await stub.GetPayment(
                pb.GetPaymentRequest(payment_id=pending.payment_id), metadata=good
            )
        ).status == pb.PAYMENT_STATUS_PENDING:
            assert asyncio.get_running_loop().time() < deadline, "the slow payment never settled"
            await asyncio.sleep(0.05)
        # The database goes away: an unexpected error, logged with its stack trace.
        await app.store.close()
        await refused(
            stub.GetPayment(pb.GetPaymentRequest(payment_id=created.payment_id), metadata=good)
        )
    # And a store that cannot be reached at startup: retried, logged, then a one-line error.
    unreachable = dataclasses.replace(
        app.settings,
        store=dataclasses.replace(app.settings.store, host="127.0.0.1", port=_closed_port()),
        store_connect_timeout_seconds=0.3,
    )
    with pytest.raises(StoreOpenTimeoutError) as unavailable:
        await open_store(unreachable, clock=FakeClock())

    codes = [error.code() for error in errors]
    assert codes == [
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.INVALID_ARGUMENT,
        *[grpc.StatusCode.UNAUTHENTICATED] * 4,
        grpc.StatusCode.INTERNAL,
    ]
    logs = captured_logs.text()
    events = {line["event"] for line in captured_logs.lines()}
    # The scan covered what matters: access lines, the stack, the store's own lines.
    assert {"rpc_completed", "unhandled_exception", "store_connect_failed"} <= events
    assert "payment_settled" in events
    spans = exporter.get_finished_spans()
    names = {span.name for span in spans}
    assert {"/payments.v1.PaymentService/RequestPayment", "get payments", "claim payments"} <= names
    assert "payment.settle_in_background" in names
    texts = {
        "logs": logs,
        "spans": "\n".join(span.to_json() for span in spans),
        "metrics": _scrape(app),
        "client errors": "\n".join(
            f"{e.details()} {e.trailing_metadata()} {e.initial_metadata()}" for e in errors
        ),
        "startup error": str(unavailable.value),
    }
    for where, text in texts.items():
        for marker in MARKERS:
            assert marker not in text, f"a planted secret ({marker}) leaked into the {where}"


def _scrape(app: App) -> str:
    url = f"http://127.0.0.1:{app.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
    return body.decode()


def _closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_the_planted_secrets_are_what_the_scan_looks_for() -> None:
    """The scan can fail: the markers are in the secrets, and the settings really carry them."""
    assert all(marker in API_KEY + PASSWORD for marker in MARKERS)
    location = Settings.from_env({"PAYMENTS_STORE_URL": "postgresql://u@h:5432/db"}).store
    planted = dataclasses.replace(location, password=PASSWORD)
    assert PASSWORD_MARKER not in planted.redacted
    assert planted.password == PASSWORD
