"""The /metrics server serves with a bounded number of threads and a read timeout: idle,
half-sent requests cannot pile up threads, and scrapes keep working."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import Counter

from payments_service.observability.metrics import new_registry
from payments_service.observability.metrics_http import BoundedMetricsServer, serve_metrics

WORKERS = 4
TIMEOUT = 1.0


@pytest.fixture
def server() -> Iterator[BoundedMetricsServer]:
    registry = new_registry()
    Counter("probe_total", "A counter to find in the scrape.", registry=registry).inc()
    started = serve_metrics("127.0.0.1", 0, registry, workers=WORKERS, timeout=TIMEOUT)
    yield started
    started.shutdown()


def scrape(port: int, accept: str | None = None) -> tuple[str, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
    if accept:
        request.add_header("Accept", accept)
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - local http
        return response.headers["Content-Type"], response.read().decode()


def half_sent(port: int) -> socket.socket:
    """A connection that sends the start of a request and then nothing."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
    return sock


def test_idle_half_sent_connections_stay_within_the_worker_bound_and_are_closed(
    server: BoundedMetricsServer,
) -> None:
    port = int(server.server_port)
    before = threading.active_count()
    held = [half_sent(port) for _ in range(200)]
    try:
        deadline = time.monotonic() + 10
        while server.served + server.refused < len(held):  # the accept loop has seen them all
            assert time.monotonic() < deadline, f"{server.served} + {server.refused} seen"
            time.sleep(0.01)
        assert server.refused > 0
        assert threading.active_count() <= before + WORKERS
        # Every one of them is closed by the server: at once when refused, after the read
        # timeout when a worker took it. None is left open.
        started = time.monotonic()
        for sock in held:
            assert sock.recv(1024) == b""
        assert time.monotonic() - started < TIMEOUT + 3
    finally:
        for sock in held:
            sock.close()
    content_type, body = scrape(port)
    assert content_type.startswith("text/plain")
    assert "probe_total 1.0" in body
    assert threading.active_count() <= before + WORKERS


def test_a_scrape_gets_text_or_openmetrics_by_accept_header(server: BoundedMetricsServer) -> None:
    port = int(server.server_port)
    text_type, _ = scrape(port)
    om_type, body = scrape(port, "application/openmetrics-text; version=1.0.0")
    assert text_type.startswith("text/plain")
    assert om_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith("# EOF")


def test_the_server_listens_on_ipv6_too() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        started = serve_metrics("::1", 0, new_registry(), workers=WORKERS, timeout=TIMEOUT)
    except OSError:
        pytest.skip("::1 cannot be bound here")
    try:
        with urllib.request.urlopen(
            f"http://[::1]:{started.server_port}/metrics", timeout=5
        ) as response:
            assert response.status == 200
    finally:
        started.shutdown()
