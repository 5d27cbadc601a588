"""An OTLP/gRPC trace receiver for tests: what Jaeger or a Collector would receive.

It records every request and the metadata it came with; it can answer the first requests with
an error (`failures`: a code and the RetryInfo delay to send, if any) and serve TLS, with
client certificates required when `client_ca` is given."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

Failure = tuple[grpc.StatusCode, float | None]  # the code, and the RetryInfo delay to send


class OtlpReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(
        self,
        *,
        failures: Sequence[Failure] = (),
        tls: tuple[Path, Path] | None = None,  # (certificate, key) of the server
        client_ca: Path | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.metadata: list[dict[str, str]] = []
        self.attempts = 0
        self._failures = list(failures)
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)  # type: ignore[no-untyped-call]
        self.scheme = "http"
        if tls is None:
            self.port = self._server.add_insecure_port("127.0.0.1:0")
        else:
            cert, key = (path.read_bytes() for path in tls)
            credentials = grpc.ssl_server_credentials(
                [(key, cert)],
                root_certificates=None if client_ca is None else client_ca.read_bytes(),
                require_client_auth=client_ca is not None,
            )
            self.port = self._server.add_secure_port("127.0.0.1:0", credentials)
            self.scheme = "https"

    @property
    def endpoint(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def __enter__(self) -> OtlpReceiver:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(0)

    def Export(  # noqa: N802 - the OTLP service's method name
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        with self._lock:
            self.attempts += 1
            failure = self._failures.pop(0) if self._failures else None
            if failure is None:
                self.requests.append(request)
                self.metadata.append(dict(context.invocation_metadata()))
        if failure is not None:
            code, delay = failure
            if delay is not None:
                seconds = int(delay)
                info = error_details_pb2.RetryInfo(
                    retry_delay=duration_pb2.Duration(
                        seconds=seconds, nanos=round((delay - seconds) * 1e9)
                    )
                )
                context.set_trailing_metadata(
                    (("google.rpc.retryinfo-bin", info.SerializeToString()),)
                )
            context.abort(code, f"test receiver: {code.name}")
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans(self) -> list[tuple[dict[str, str], trace_pb2.Span]]:
        """Every received span with its resource's string attributes."""
        with self._lock:
            requests = list(self.requests)
        received: list[tuple[dict[str, str], trace_pb2.Span]] = []
        for request in requests:
            for resource_spans in request.resource_spans:
                resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    received.extend((resource, span) for span in scope_spans.spans)
        return received

    def wait_for_spans(self, count: int, timeout: float = 10) -> list[tuple[dict[str, str], Any]]:
        deadline = time.monotonic() + timeout
        while len(spans := self.spans()) < count:
            assert time.monotonic() < deadline, f"received {len(spans)} of {count} spans"
            time.sleep(0.05)
        return spans

    def wait_for_attempts(self, count: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while self.attempts < count:
            assert time.monotonic() < deadline, f"{self.attempts} of {count} export attempts"
            time.sleep(0.01)
