"""The HTTP floor: the cheapest aiohttp server that answers payments.v1's JSON/HTTP routes.

The gRPC floor's dict-backed RPCs (`benchmarks.floor_server.FloorServicer`) behind aiohttp's
low-level server, with the same transcoding as `payments-server`'s listener (protobuf's
`json_format`, orjson) and nothing else: no observation, admission, authentication or
validation. `http-floor` against `floor` prices the HTTP server and the JSON transcoding per
call; `http` against `http-floor` prices the service's work over HTTP. Binds 127.0.0.1:0,
prints `{"event": "server_started", "port": N}` and exits 0 on SIGTERM.

    python -m benchmarks.http_floor_server
"""

from __future__ import annotations

import asyncio
import os

import orjson
from aiohttp import web
from google.protobuf import json_format

from benchmarks.floor_server import FloorServicer
from benchmarks.serving import announce, until_signalled
from payments_service.gen.payments.v1 import payments_pb2 as pb

PAYMENTS = "/v1/payments"
JSON = "application/json"


def _json(message: object) -> bytes:
    return orjson.dumps(
        json_format.MessageToDict(message, always_print_fields_with_no_presence=True)  # type: ignore[arg-type]
    )


def handler(floor: FloorServicer) -> web.Server:
    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        path = request.rel_url.raw_path
        if request.method == "POST" and path == PAYMENTS:
            message = json_format.Parse(await request.read(), pb.RequestPaymentRequest())
            return web.Response(body=_json(floor.request_sync(message)), content_type=JSON)
        if request.method == "GET" and path.startswith(PAYMENTS + "/"):
            payment = floor.lookup(path.removeprefix(PAYMENTS + "/"))
            if payment is None:
                return web.Response(status=404, body=b'{"code": 5}', content_type=JSON)
            return web.Response(body=_json(payment), content_type=JSON)
        return web.Response(body=b'{"status": "ok"}', content_type=JSON)

    return web.Server(handle, access_log=None)


async def serve() -> None:
    runner = web.ServerRunner(handler(FloorServicer()))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    (host, port, *_) = runner.addresses[0]
    announce("server_started", port=port, host=host, pid=os.getpid())
    await until_signalled()
    await runner.cleanup()


def main() -> None:
    asyncio.run(serve())


if __name__ == "__main__":
    main()
