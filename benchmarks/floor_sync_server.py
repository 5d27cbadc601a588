"""The floor again, on grpcio's *sync* thread-pool server: the same dict-backed RPCs as
`floor_server` (the grpc.aio floor), so `floor-sync` against `floor` prices the server model
itself before any of the service's code runs. Same startup line and SIGTERM behaviour.

    python -m benchmarks.floor_sync_server
"""

from __future__ import annotations

import json
import os
import signal
import threading
from concurrent import futures
from typing import Any

import grpc

from benchmarks.floor_server import FloorServicer
from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc

WORKERS = 16  # enough threads for the loaded concurrency; more only adds GIL contention


class SyncFloorServicer(pb_grpc.PaymentServiceServicer):
    """FloorServicer's logic behind a lock (handlers run on pool threads)."""

    def __init__(self) -> None:
        self._floor = FloorServicer()
        self._lock = threading.Lock()

    def RequestPayment(  # noqa: N802 - gRPC method names are fixed by the proto
        self, request: pb.RequestPaymentRequest, context: Any
    ) -> pb.RequestPaymentResponse:
        with self._lock:
            return self._floor.request_sync(request)

    def GetPayment(  # noqa: N802
        self, request: pb.GetPaymentRequest, context: Any
    ) -> pb.GetPaymentResponse:
        with self._lock:
            payment = self._floor.lookup(request.payment_id)
        if payment is None:
            context.set_code(grpc.StatusCode.NOT_FOUND)
            return pb.GetPaymentResponse()
        return payment

    def Health(  # noqa: N802
        self, request: pb.HealthRequest, context: Any
    ) -> pb.HealthResponse:
        return pb.HealthResponse(status="ok")


def main() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=WORKERS))
    pb_grpc.add_PaymentServiceServicer_to_server(SyncFloorServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(json.dumps({"event": "server_started", "port": port, "pid": os.getpid()}), flush=True)
    stop.wait()
    server.stop(None)


if __name__ == "__main__":
    main()
