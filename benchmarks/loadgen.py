"""Multi-process closed-loop load generator (grpc.aio clients, or aiohttp for JSON/HTTP).

`run_load` spawns N worker processes and splits the total concurrency C across them: each
worker opens one channel per target (server replica) and runs C/N loops, and each loop sends
one call, waits for its answer and sends the next (closed loop: offered load adapts to the
server, so the server is never asked for more than it can do and throughput is what it
sustains at concurrency C).
With several targets, a worker sends its calls to them in turn (round robin per call, like
gRPC's `round_robin` policy), so the replicas share its calls evenly.

Protocol with the parent: every worker prepares its key pools, runs the workload for the
warm-up, then reports "ready" and blocks; when all are ready the parent calls
`hooks.started()` (reads the server's and the workers' CPU time from /proc: the workers' pids
were handed to `hooks.spawned` when they started) and releases them together; each runs the
measured phase (a duration, or a number of calls for the soak), reports "done", and then sends
its samples. After the last "done" the parent calls `hooks.ended()`. The measured window is
therefore the same for the clients' calls, the clients' CPU and the server's CPU.

Workloads (every request is valid: currency EUR, an order id, an amount, and idempotency keys
unique per measurement, worker and call):

- `new`: RequestPayment with a new key each call (a new payment);
- `replay`: RequestPayment with one of REPLAY_POOL keys created during preparation, with the
  same payload (an idempotent replay);
- `get`: GetPayment of one of GET_POOL payments created during preparation;
- `mix`: 70 % new, 20 % get, 10 % replay, interleaved in a fixed 10-call cycle (MIX).

With `protocol="http"` the same calls go as grpc-gateway JSON (`POST /v1/payments`,
`GET /v1/payments/{id}`) over keep-alive connections (`HttpTraffic`, `benchmarks.http_client`),
one connection per loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import queue
import time
import traceback
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import grpc
from google.protobuf import json_format

from benchmarks.http_client import HttpConnection
from benchmarks.procs import die_with_parent
from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from multiprocessing.context import SpawnProcess
    from multiprocessing.synchronize import Event

MIX = ("new", "get", "new", "new", "replay", "new", "new", "get", "new", "new")
SCHEDULES: dict[str, tuple[str, ...]] = {
    "new": ("new",),
    "replay": ("replay",),
    "get": ("get",),
    "mix": MIX,
}
REPLAY_POOL = 16  # keys per worker
GET_POOL = 256  # payments per worker
CALL_TIMEOUT_S = 10.0
SETUP_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class LoadSpec:
    targets: tuple[str, ...]  # host:port of each replica; calls go round robin
    workload: str
    concurrency: int
    workers: int
    warmup_s: float
    duration_s: float  # measured phase, unless total_calls is set
    total_calls: int | None = None
    tag: str = "bench"  # unique per measurement; prefixes every idempotency key
    cpus: tuple[int, ...] | None = None  # the cores every worker is pinned to (None: any)
    protocol: str = "grpc"  # or "http": the JSON/HTTP listener at each target


@dataclass(frozen=True, slots=True)
class WorkerResult:
    index: int
    calls: int
    latencies_ns: bytes  # array('q') of the measured calls, in completion order
    codes: dict[str, int]  # measured calls by status code name
    setup_errors: int  # non-OK calls during preparation and warm-up


@dataclass(slots=True)
class LoadResult:
    window_s: float
    calls: int
    latencies_ns: list[int]  # sorted
    codes: dict[str, int]
    setup_errors: int

    @property
    def errors(self) -> int:
        """Every non-OK call the clients saw, warm-up included."""
        return self.setup_errors + sum(n for code, n in self.codes.items() if code != "OK")


@dataclass(slots=True)
class WindowHooks:
    """Called by the parent with the workers' pids once they run, at the start and end of the
    measured window, and about once a second in between (the soak samples RSS there)."""

    spawned: Callable[[list[int]], None] = lambda pids: None
    started: Callable[[], None] = lambda: None
    ended: Callable[[], None] = lambda: None
    tick: Callable[[], None] = lambda: None


class _More(Protocol):
    def __call__(self) -> bool: ...


# --------------------------------------------------------------------------- worker side


class Traffic:
    """Builds and sends one worker's requests."""

    def __init__(self, stubs: list[pb_grpc.PaymentServiceAsyncStub], prefix: str) -> None:
        self._stubs = stubs
        self._prefix = prefix
        self._seq = 0
        self._turn = 0
        self.replay_pool: list[pb.RequestPaymentRequest] = []
        self.payment_ids: list[str] = []

    def new_request(self) -> pb.RequestPaymentRequest:
        self._seq += 1
        n = self._seq
        return pb.RequestPaymentRequest(
            amount_minor=100 + n % 100_000,
            currency="EUR",
            order_id=f"order-{self._prefix}-{n}",
            idempotency_key=f"{self._prefix}-{n}",
        )

    def stub(self) -> pb_grpc.PaymentServiceAsyncStub:
        """The next target's stub, in turn (one counter for all loops, so the turns do not
        follow the workload's cycle: every replica gets every kind of call)."""
        self._turn += 1
        return self._stubs[self._turn % len(self._stubs)]

    async def prepare(self) -> None:
        """Create the replay keys and the payments that `get` reads (through every target, so
        replays and reads also cross replicas)."""
        for _ in range(REPLAY_POOL):
            request = self.new_request()
            await self.stub().RequestPayment(request, timeout=CALL_TIMEOUT_S)
            self.replay_pool.append(request)
        for _ in range(GET_POOL):
            response = await self.stub().RequestPayment(self.new_request(), timeout=CALL_TIMEOUT_S)
            self.payment_ids.append(response.payment_id)

    async def call(self, kind: str, n: int) -> None:
        stub = self.stub()
        if kind == "new":
            await stub.RequestPayment(self.new_request(), timeout=CALL_TIMEOUT_S)
        elif kind == "replay":
            request = self.replay_pool[n % len(self.replay_pool)]
            await stub.RequestPayment(request, timeout=CALL_TIMEOUT_S)
        else:
            payment_id = self.payment_ids[n % len(self.payment_ids)]
            await stub.GetPayment(
                pb.GetPaymentRequest(payment_id=payment_id), timeout=CALL_TIMEOUT_S
            )


class CallFailedError(Exception):
    """An HTTP call that did not answer 200; `code` names its status (`HTTP_503`)."""

    def __init__(self, status: int) -> None:
        self.code = f"HTTP_{status}"
        super().__init__(self.code)


class HttpTraffic(Traffic):
    """The same calls as JSON over HTTP, one keep-alive connection per loop and target
    (`benchmarks.http_client`); targets in turn, as `Traffic` does with stubs."""

    def __init__(self, targets: tuple[str, ...], prefix: str) -> None:
        super().__init__([], prefix)
        self._targets = [
            (host, int(port)) for host, _, port in (t.rpartition(":") for t in targets)
        ]
        self._idle: list[list[HttpConnection]] = [[] for _ in self._targets]

    async def _send(self, method: str, path: str, body: bytes = b"") -> bytes:
        self._turn += 1
        index = self._turn % len(self._targets)
        idle = self._idle[index]
        connection = idle.pop() if idle else HttpConnection(*self._targets[index])
        try:
            async with asyncio.timeout(CALL_TIMEOUT_S):
                status, answer = await connection.request(method, path, body)
        except BaseException:
            await connection.close()
            raise
        idle.append(connection)
        if status != 200:
            raise CallFailedError(status)
        return answer

    async def _post(self, request: pb.RequestPaymentRequest) -> dict[str, Any]:
        body = json_format.MessageToJson(request, indent=None).encode()
        answer: dict[str, Any] = json.loads(await self._send("POST", "/v1/payments", body))
        return answer

    async def prepare(self) -> None:
        for _ in range(REPLAY_POOL):
            request = self.new_request()
            await self._post(request)
            self.replay_pool.append(request)
        for _ in range(GET_POOL):
            self.payment_ids.append((await self._post(self.new_request()))["paymentId"])

    async def call(self, kind: str, n: int) -> None:
        if kind == "new":
            await self._post(self.new_request())
        elif kind == "replay":
            await self._post(self.replay_pool[n % len(self.replay_pool)])
        else:
            await self._send("GET", f"/v1/payments/{self.payment_ids[n % len(self.payment_ids)]}")

    async def close(self) -> None:
        for idle in self._idle:
            for connection in idle:
                await connection.close()


@dataclass(slots=True)
class Recorder:
    latencies_ns: array[int] = field(default_factory=lambda: array("q"))
    codes: Counter[str] = field(default_factory=Counter)

    def record(self, latency_ns: int, code: str) -> None:
        self.latencies_ns.append(latency_ns)
        self.codes[code] += 1

    @property
    def errors(self) -> int:
        return sum(n for code, n in self.codes.items() if code != "OK")


def until(deadline: float) -> _More:
    return lambda: time.monotonic() < deadline


def budget(calls: int) -> _More:
    """True `calls` times, then False: loops sharing it send `calls` calls in total."""
    left = [calls]

    def more() -> bool:
        left[0] -= 1
        return left[0] >= 0

    return more


async def closed_loop(
    traffic: Traffic, schedule: tuple[str, ...], offset: int, more: _More, rec: Recorder
) -> None:
    n = offset
    while more():
        kind = schedule[n % len(schedule)]
        start = time.perf_counter_ns()
        try:
            await traffic.call(kind, n)
            code = "OK"
        except grpc.aio.AioRpcError as exc:
            code = exc.code().name
        except CallFailedError as exc:
            code = exc.code
        except (OSError, asyncio.IncompleteReadError) as exc:  # an HTTP connection failed
            code = type(exc).__name__
        rec.record(time.perf_counter_ns() - start, code)
        n += 1


async def run_loops(traffic: Traffic, spec: LoadSpec, loops: int, more: _More) -> Recorder:
    rec = Recorder()
    schedule = SCHEDULES[spec.workload]
    await asyncio.gather(*(closed_loop(traffic, schedule, i, more, rec) for i in range(loops)))
    return rec


def share(total: int, parts: int, index: int) -> int:
    """Part `index` of `total` split as evenly as possible into `parts`."""
    return total // parts + (1 if index < total % parts else 0)


async def _worker(spec: LoadSpec, index: int, results: queue.Queue[Any], go: Event) -> None:
    loops = share(spec.concurrency, spec.workers, index)
    async with contextlib.AsyncExitStack() as channels:
        prefix = f"{spec.tag}-w{index}"
        traffic: Traffic
        if spec.protocol == "http":
            http = HttpTraffic(spec.targets, prefix)
            channels.push_async_callback(http.close)
            traffic = http
        else:
            stubs: list[pb_grpc.PaymentServiceAsyncStub] = [
                pb_grpc.PaymentServiceStub(
                    await channels.enter_async_context(grpc.aio.insecure_channel(target))
                )
                for target in spec.targets
            ]
            traffic = Traffic(stubs, prefix)
        await traffic.prepare()
        warm = await run_loops(traffic, spec, loops, until(time.monotonic() + spec.warmup_s))
        results.put(("ready", index))
        if not go.wait(SETUP_TIMEOUT_S):
            raise TimeoutError("the parent never started the measured phase")
        if spec.total_calls is None:
            more = until(time.monotonic() + spec.duration_s)
        else:
            more = budget(share(spec.total_calls, spec.workers, index))
        rec = await run_loops(traffic, spec, loops, more)
        results.put(("done", index))
    results.put(
        (
            "result",
            WorkerResult(
                index=index,
                calls=len(rec.latencies_ns),
                latencies_ns=rec.latencies_ns.tobytes(),
                codes=dict(rec.codes),
                setup_errors=warm.errors,
            ),
        )
    )


def worker_main(spec: LoadSpec, index: int, results: queue.Queue[Any], go: Event) -> None:
    """Entry point of a worker process; a failure is reported to the parent, not lost."""
    die_with_parent()
    if spec.cpus is not None:
        os.sched_setaffinity(0, spec.cpus)  # what `taskset -c` does, for a spawned worker
    try:
        asyncio.run(_worker(spec, index, results, go))
    except BaseException as exc:  # report everything, including KeyboardInterrupt
        results.put(("error", index, "".join(traceback.format_exception(exc))))


# --------------------------------------------------------------------------- parent side


class LoadError(RuntimeError):
    """A worker failed or stopped answering."""


def run_load(spec: LoadSpec, hooks: WindowHooks | None = None) -> LoadResult:
    """Run `spec` with fresh worker processes; always stops them before returning."""
    hooks = hooks or WindowHooks()
    ctx = multiprocessing.get_context("spawn")
    results: queue.Queue[Any] = ctx.Queue()  # type: ignore[assignment]
    go = ctx.Event()
    procs = [
        ctx.Process(target=worker_main, args=(spec, i, results, go), daemon=True)
        for i in range(spec.workers)
    ]
    try:
        for proc in procs:
            proc.start()
        hooks.spawned([proc.pid for proc in procs if proc.pid is not None])
        result = _drive(spec, hooks, results, go, procs)
    except BaseException:
        _stop_workers(procs, grace_s=0)  # interrupted or failed: do not wait for them
        raise
    _stop_workers(procs, grace_s=5)
    return result


def _drive(
    spec: LoadSpec,
    hooks: WindowHooks,
    results: queue.Queue[Any],
    go: Event,
    procs: list[SpawnProcess],
) -> LoadResult:
    inbox = Mailbox(results, procs)
    inbox.wait("ready", spec.workers, deadline=time.monotonic() + SETUP_TIMEOUT_S + spec.warmup_s)
    hooks.started()
    start = time.monotonic()
    go.set()
    inbox.wait("done", spec.workers, tick=hooks.tick)
    window_s = time.monotonic() - start
    hooks.ended()
    messages = inbox.wait("result", spec.workers, deadline=time.monotonic() + 60)
    return _merge(window_s, [message[1] for message in messages])


@dataclass(slots=True)
class Mailbox:
    """The workers' messages, by kind; a message that arrives early waits for its turn."""

    results: queue.Queue[Any]
    procs: list[SpawnProcess]
    received: list[tuple[Any, ...]] = field(default_factory=list)

    def wait(
        self,
        kind: str,
        count: int,
        *,
        deadline: float | None = None,
        tick: Callable[[], None] | None = None,
    ) -> list[tuple[Any, ...]]:
        """Wait for `count` messages of `kind`; fail on a worker error, death or the deadline."""
        while len(matching := [m for m in self.received if m[0] == kind]) < count:
            if deadline is not None and time.monotonic() > deadline:
                raise LoadError(f"load generator: {len(matching)} of {count} workers {kind}")
            try:
                message = self.results.get(timeout=1.0)
            except queue.Empty:
                _check_alive(self.procs, kind)
            else:
                if message[0] == "error":
                    raise LoadError(f"load generator worker {message[1]} failed:\n{message[2]}")
                self.received.append(message)
            if tick is not None:
                tick()
        return matching


def _check_alive(procs: list[SpawnProcess], waiting_for: str) -> None:
    for proc in procs:
        if proc.exitcode is not None and proc.exitcode != 0:
            raise LoadError(
                f"load generator worker pid {proc.pid} exited with {proc.exitcode} "
                f"while the parent waited for {waiting_for!r}"
            )


def _stop_workers(procs: list[SpawnProcess], grace_s: float) -> None:
    for proc in procs:
        with contextlib.suppress(Exception):
            if proc.exitcode is None and proc.pid is not None:
                proc.join(timeout=grace_s)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()


def _merge(window_s: float, parts: list[WorkerResult]) -> LoadResult:
    latencies: list[int] = []
    codes: Counter[str] = Counter()
    for part in parts:
        samples = array("q")
        samples.frombytes(part.latencies_ns)
        latencies.extend(samples)
        codes.update(part.codes)
    latencies.sort()
    return LoadResult(
        window_s=window_s,
        calls=sum(part.calls for part in parts),
        latencies_ns=latencies,
        codes=dict(codes),
        setup_errors=sum(part.setup_errors for part in parts),
    )
