"""The `/metrics` HTTP server: bounded threads, a read timeout, nothing else.

prometheus_client's `start_http_server` starts one thread per connection and never times a
read out, so idle half-sent requests pile up threads (the audit held 2,009 threads with 2,000
connections). This server keeps prometheus_client's WSGI app (text or OpenMetrics with
exemplars, chosen by the Accept header; gzip when asked) and changes only how connections are
served:

- at most `workers` connections are served at once, by a fixed pool of threads;
- a connection that arrives while every worker is busy is closed at once (the scraper retries
  at its next interval), so a flood costs no thread and no queue;
- every read and write on a connection times out after `timeout` seconds, so a client that
  sends half a request holds its worker for at most that long.
"""

from __future__ import annotations

import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


class _QuietHandler(WSGIRequestHandler):
    """No access line per scrape on stderr; `timeout` (set per server by `serve_metrics`) is
    applied to the socket by StreamRequestHandler.setup()."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class BoundedMetricsServer(WSGIServer):
    """A WSGIServer whose connections are served by a bounded pool (see the module)."""

    workers: int  # set per server by `serve_metrics`
    request_queue_size = 128  # the listen backlog: a burst is refused quickly, not SYN-dropped

    def server_activate(self) -> None:
        super().server_activate()
        self._slots = threading.BoundedSemaphore(self.workers)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="metrics-http")
        self.served = 0  # connections handed to a worker
        self.refused = 0  # connections closed at once because every worker was busy

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            self.shutdown_request(request)
            return
        self.served += 1
        self._pool.submit(self._serve, request, client_address)

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Timeouts and resets are the client's business: no traceback on stderr."""

    def shutdown(self) -> None:
        super().shutdown()
        self.server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)


def serve_metrics(
    host: str,
    port: int,
    registry: CollectorRegistry,
    *,
    workers: int,
    timeout: float,
) -> BoundedMetricsServer:
    """Start serving `registry` on host:port in a daemon thread; `shutdown()` stops it."""
    family, _, _, _, sockaddr = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]

    class Server(BoundedMetricsServer):
        address_family = family

    Server.workers = workers

    class Handler(_QuietHandler):
        pass

    Handler.timeout = timeout
    server = make_server(
        str(sockaddr[0]), port, make_wsgi_app(registry), Server, handler_class=Handler
    )
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
