"""The real `payments-server` as a subprocess, for end-to-end tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from queue import Empty, Queue

VENV_BIN = str(Path(sys.executable).parent)
SERVER = shutil.which("payments-server", path=VENV_BIN)


class ServerProcess:
    """`payments-server` on 127.0.0.1:0; the bound port is read from its startup log line."""

    def __init__(self, command: list[str] | None = None, **env: str) -> None:
        assert SERVER is not None, "payments-server is not installed in this environment"
        self.proc = subprocess.Popen(
            command or [SERVER],
            env={
                # The developer's own OTEL_* settings must not leak into these tests.
                **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
                "PAYMENTS_GRPC_ADDRESS": "127.0.0.1:0",
                "PAYMENTS_HTTP_ADDRESS": "127.0.0.1:0",
                "PAYMENTS_METRICS_ADDRESS": "off",
                # No drain unless a test asks for one: shutdown timings stay the grace's.
                "PAYMENTS_SHUTDOWN_DRAIN_SECONDS": "0",
                # These tests load one merchant as fast as the machine allows: on a fast one that
                # is past the merchant's default rate, and a test of shutdown or an outage would
                # fail by the machine's speed. The limits have their own tests
                # (tests/integration/observability/test_rate_limits.py); a test may set it back.
                "PAYMENTS_RATE_LIMIT_RPS": "off",
                **env,
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: Queue[dict[str, object]] = Queue()
        self.seen: list[dict[str, object]] = []  # every line so far, also those waited past
        threading.Thread(target=self._read, daemon=True).start()
        self.started = self.wait_for("server_started")
        self.port = int(str(self.started["port"]))
        self.http_port = self.started["http_port"]  # None with PAYMENTS_HTTP_ADDRESS=off

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            parsed = json.loads(line)
            self.seen.append(parsed)
            self.lines.put(parsed)

    def wait_for(self, event: str, timeout: float = 10) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except Empty:
                break
            if line.get("event") == event:
                return line
        raise AssertionError(f"no {event!r} log line within {timeout}s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def run_server(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`payments-server ARGS` to completion, in a clean environment plus `env`."""
    assert SERVER is not None, "payments-server is not installed in this environment"
    return subprocess.run(
        [SERVER, *args],
        env={"PATH": "/usr/bin:/bin", "PAYMENTS_LOG_LEVEL": "debug", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
