"""The entry point and the lifecycle, in process: `serve()` starts everything, a signal stops it
in order; `main()` dispatches its commands and exits 2 on bad input; the healthcheck command
asks a real server. (tests/e2e runs the same through real processes.)"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from payments_service import healthcheck
from payments_service.adapters.stores.factory import StoreOpenTimeoutError
from payments_service.config import ProbeSettings, Settings
from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc
from payments_service.main import USAGE, main, serve
from tests.conftest import CapturedLogs, payment_request
from tests.processes import run_server


async def wait_for_line(logs: CapturedLogs, event: str, timeout: float = 10) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        lines = logs.lines(event)
        if lines:
            return lines[-1]
        assert asyncio.get_running_loop().time() < deadline, f"no {event} line"
        await asyncio.sleep(0.02)


def lifecycle_settings(**env: str) -> Settings:
    return Settings.from_env(
        {
            "PAYMENTS_GRPC_ADDRESS": "127.0.0.1:0",
            "PAYMENTS_HTTP_ADDRESS": "127.0.0.1:0",
            "PAYMENTS_METRICS_ADDRESS": "127.0.0.1:0",
            "PAYMENTS_SHUTDOWN_GRACE_SECONDS": "2",
            "OTEL_SDK_DISABLED": "false",
            **env,
        }
    )


@pytest.mark.parametrize("store", ["memory://", "sqlite"])
async def test_serve_answers_then_stops_in_order_on_sigterm(
    captured_logs: CapturedLogs, tmp_path: Path, store: str
) -> None:
    url = f"sqlite:///{tmp_path / 'lifecycle.db'}" if store == "sqlite" else store
    settings = lifecycle_settings(PAYMENTS_STORE_URL=url)
    serving = asyncio.ensure_future(serve(settings, log_writer=captured_logs.writer))
    started = await wait_for_line(captured_logs, "server_started")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{started['port']}") as channel:
        stub = pb_grpc.PaymentServiceStub(channel)
        reply = await stub.RequestPayment(payment_request())
        assert reply.status == pb.PAYMENT_STATUS_SUCCEEDED
        ok = await asyncio.to_thread(
            healthcheck.check, f"127.0.0.1:{started['port']}", ProbeSettings().timeout_seconds
        )
        assert ok is True
    os.kill(os.getpid(), signal.SIGHUP)  # no keys file: logged and ignored, never fatal
    await wait_for_line(captured_logs, "api_keys_reload_skipped")
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(serving, timeout=10)
    events = [line["event"] for line in captured_logs.lines()]
    order = ["server_started", "shutdown_started", "shutdown_complete"]
    assert [e for e in events if e in order] == order
    complete = captured_logs.lines("shutdown_complete")[0]
    assert complete["unsettled_payments"] == 0


def run_main(monkeypatch: pytest.MonkeyPatch, *argv: str, **env: str) -> int:
    monkeypatch.setattr(sys, "argv", ["payments-server", *argv])
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        main()
    return int(exited.value.code or 0)


@pytest.mark.parametrize(
    ("argv", "env", "stderr"),
    [
        ((), {"PAYMENTS_LOG_LEVEL": "loud"}, "payments-server: invalid PAYMENTS_LOG_LEVEL='loud'"),
        (("bogus",), {}, USAGE),
        (("keys", "new", "no spaces allowed"), {}, "merchant"),
    ],
)
def test_main_exits_2_with_one_clear_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: tuple[str, ...],
    env: dict[str, str],
    stderr: str,
) -> None:
    assert run_main(monkeypatch, *argv, **env) == 2
    assert stderr in capsys.readouterr().err


def test_main_keys_new_prints_a_key_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_main(monkeypatch, "keys", "new", "acme") == 0
    assert "acme " in capsys.readouterr().out


def test_main_migrate_applies_the_schema_and_exits(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, captured_logs: CapturedLogs
) -> None:
    database = tmp_path / "migrated.db"
    monkeypatch.setattr(sys, "argv", ["payments-server", "migrate"])
    monkeypatch.setenv("PAYMENTS_STORE_URL", f"sqlite:///{database}")
    main()
    assert database.exists()


def test_the_healthcheck_command_says_not_serving_when_nothing_listens(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["payments-healthcheck"])
    monkeypatch.setenv("PAYMENTS_HEALTHCHECK_TARGET", "127.0.0.1:9")  # discard port: refused
    with pytest.raises(SystemExit) as exited:
        healthcheck.main()
    assert exited.value.code == 1
    assert "NOT SERVING" in capsys.readouterr().out


async def test_health_is_not_serving_and_calls_unavailable_until_the_store_is_ready(
    captured_logs: CapturedLogs,
) -> None:
    """A PostgreSQL store that cannot be reached: the server listens, says NOT_SERVING and
    answers UNAVAILABLE (which clients retry) while it retries, then gives up."""
    with socket.socket() as closed:  # a port with nothing listening
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings = lifecycle_settings(
        PAYMENTS_STORE_URL=f"postgresql://payments:planted-secret@127.0.0.1:{port}/db",
        PAYMENTS_STORE_CONNECT_TIMEOUT_SECONDS="3",
    )
    serving = asyncio.ensure_future(serve(settings, log_writer=captured_logs.writer))
    connecting = await wait_for_line(captured_logs, "store_connecting")
    target = f"127.0.0.1:{connecting['port']}"
    async with grpc.aio.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "payments.v1.PaymentService"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await pb_grpc.PaymentServiceStub(channel).RequestPayment(payment_request())
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    with pytest.raises(StoreOpenTimeoutError):
        await asyncio.wait_for(serving, timeout=15)
    assert "planted-secret" not in captured_logs.text()
    assert "planted-secret" not in str(refused.value.details())


def test_config_prints_each_effective_setting_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["payments-server", "config", "--markdown"])
    monkeypatch.setenv("PAYMENTS_GRPC_ADDRESS", "127.0.0.1:7000")
    main()
    out = capsys.readouterr().out
    assert out.startswith("| variable | value | source |\n")
    assert "| PAYMENTS_GRPC_ADDRESS | 127.0.0.1:7000 | set (PAYMENTS_GRPC_ADDRESS) |" in out
    assert "| PAYMENTS_METRICS_ADDRESS | 0.0.0.0:9464 | default |" in out


@pytest.mark.parametrize(
    "variable", ["PAYMENTS_GRPC_ADDRESS", "PAYMENTS_HTTP_ADDRESS", "PAYMENTS_METRICS_ADDRESS"]
)
def test_an_address_in_use_exits_2_with_one_line_naming_its_variable(variable: str) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = f"127.0.0.1:{held.getsockname()[1]}"
        env = {
            "PAYMENTS_GRPC_ADDRESS": "127.0.0.1:0",
            "PAYMENTS_HTTP_ADDRESS": "127.0.0.1:0",
            "PAYMENTS_METRICS_ADDRESS": "off",
        }
        env[variable] = taken
        result = run_server(**env)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"payments-server: invalid {variable}={taken!r}: cannot listen there "
        "(Address already in use)"
    ]
