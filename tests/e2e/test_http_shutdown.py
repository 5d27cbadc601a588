"""The real `payments-server`'s JSON/HTTP listener through SIGTERM: during the drain health is
503 and responses close their connections while calls are still served; a client at full rate
through the whole shutdown gets, for every request the server accepted (it has an access line),
that answer, and for every other one a 503 with Retry-After or a refused connection: both
retryable, nothing lost. Exit 0 within drain + grace + 2 s."""

from __future__ import annotations

import asyncio
import collections
import signal
import time

import aiohttp

from tests.e2e.conftest import DRAIN_SECONDS, GRACE_SECONDS
from tests.processes import ServerProcess

WORKERS = 32


def body(key: str) -> str:
    return (
        f'{{"amountMinor": 1250, "currency": "EUR", "orderId": "o-{key}", '
        f'"idempotencyKey": "{key}"}}'
    )


async def test_a_full_rate_http_client_loses_nothing_through_sigterm(
    drained: ServerProcess,
) -> None:
    server = drained
    base = f"http://127.0.0.1:{server.http_port}"
    outcomes: dict[str, str] = {}
    stopping = asyncio.Event()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:

            async def client(worker: int) -> None:
                n = 0
                while not stopping.is_set():
                    key = f"w{worker}-{n}"
                    n += 1
                    try:
                        async with session.post(
                            base + "/v1/payments", data=body(key), headers={"x-request-id": key}
                        ) as response:
                            await response.read()
                            retry = response.headers.get("Retry-After")
                            outcomes[key] = f"{response.status}" + ("+retry" if retry else "")
                    except aiohttp.ClientConnectionError:
                        outcomes[key] = "connection"
                        await asyncio.sleep(0.01)

            clients = [asyncio.create_task(client(w)) for w in range(WORKERS)]
            deadline = time.monotonic() + 30
            while sum(o == "200" for o in outcomes.values()) < 300:
                assert time.monotonic() < deadline, "the server never reached full rate"
                await asyncio.sleep(0.01)
            signalled = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(server.wait_for, "shutdown_started")
            async with session.get(base + "/v1/health") as health:
                assert health.status == 503
                assert health.headers["Retry-After"] == "1"
                assert health.headers["Connection"] == "close"
            status = await asyncio.to_thread(server.proc.wait, 20)
            elapsed = time.monotonic() - signalled
            stopping.set()
            await asyncio.gather(*clients)
    finally:
        server.stop()

    assert status == 0
    assert elapsed <= DRAIN_SECONDS + GRACE_SECONDS + 2
    accepted = {
        str(line["request_id"]): line
        for line in server.seen
        if line["event"] == "rpc_completed" and line.get("http_route") == "/v1/payments"
    }
    for key, outcome in outcomes.items():
        line = accepted.get(key)
        if line is not None:  # handled: the client got the answer the server logged
            assert outcome.split("+")[0] == str(line["http_status"]), (key, outcome, line)
        assert outcome in ("200", "503+retry", "connection"), (key, outcome)
    counts = collections.Counter(outcomes.values())
    assert counts["200"] >= 300, counts
    started = next(i for i, line in enumerate(server.seen) if line["event"] == "shutdown_started")
    served_in_drain = [
        line
        for line in server.seen[started:]
        if line["event"] == "rpc_completed" and line.get("http_status") == 200
    ]
    assert served_in_drain, "nothing was served over HTTP during the drain"
