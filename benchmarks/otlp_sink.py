"""An OTLP/gRPC trace receiver in its own process, so the `full` configuration really exports
its spans over the network to another process, as it would to a Collector or Jaeger.

It parses each ExportTraceServiceRequest, counts requests and spans, and answers success. Binds
127.0.0.1:0, prints `{"event": "server_started", "port": N}`, and on SIGTERM prints
`{"event": "sink_stopped", "exports": N, "spans": N}` and exits 0.

    python -m benchmarks.otlp_sink
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from benchmarks.serving import announce, serve_until_signalled


class CountingTraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.exports = 0
        self.spans = 0

    async def Export(  # noqa: N802 - the OTLP service's method name
        self,
        request: trace_service_pb2.ExportTraceServiceRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.exports += 1
        self.spans += sum(
            len(scope_spans.spans)
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
        )
        return trace_service_pb2.ExportTraceServiceResponse()


async def serve() -> None:
    server = grpc.aio.server()
    sink = CountingTraceService()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(sink, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await serve_until_signalled(server, port)
    announce("sink_stopped", exports=sink.exports, spans=sink.spans)


def main() -> None:
    asyncio.run(serve())


if __name__ == "__main__":
    main()
