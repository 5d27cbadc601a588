"""Where do CANCELLEDs at shutdown come from? A bare grpc.aio server, no code of ours.

    .venv/bin/python scripts/shutdown_cancelled_probe.py [--workers 64] [--runs 3]

For each stop order it starts a minimal server in a subprocess (one unary method that answers
after 2 ms), lets a closed-loop client with `--workers` outstanding calls run at full rate,
sends SIGTERM, and counts the client's status codes. The server prints how many calls reached
its handler after SIGTERM.

- `plain`: `await server.stop(5)`, what grpc's examples do. Calls grpc-core had received but not
  yet handed to the application are cancelled by the stop (`RealRequestMatcher::
  ZombifyPending` in grpc's src/core/server/server.cc): the client gets CANCELLED although the
  grace (5 s) is 2,500 times the handler's time, and no handler ever saw those calls.
- `park`: the order `transport.server.RunningServer.stop` uses: new calls that reach the
  handler wait (parked) for 0.25 s, then `server.stop(5)` begins, and 0.1 s later the parked
  calls are answered UNAVAILABLE. grpc-core's queue has emptied into the handler by then, so
  nothing is left for it to cancel.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import signal
import subprocess
import sys

import grpc

HANDLER_SECONDS = 0.002
GRACE_SECONDS = 5.0
PARK_SECONDS = 0.25
GOAWAY_SECONDS = 0.1


def _identity(raw: bytes) -> bytes:
    return raw


async def run_server(order: str) -> None:
    closing = False
    released = asyncio.Event()
    after_sigterm = 0

    async def echo(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        nonlocal after_sigterm
        if closing:
            after_sigterm += 1
            if order == "park":
                await released.wait()
                await context.abort(grpc.StatusCode.UNAVAILABLE, "shutting down")
        await asyncio.sleep(HANDLER_SECONDS)
        return request

    handler = grpc.method_handlers_generic_handler(
        "probe.Probe", {"Echo": grpc.unary_unary_rpc_method_handler(echo, _identity, _identity)}
    )
    server = grpc.aio.server(handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print(port, flush=True)
    await stop.wait()
    if order == "park":
        closing = True
        await asyncio.sleep(PARK_SECONDS)
        stopping = asyncio.ensure_future(server.stop(GRACE_SECONDS))
        await asyncio.sleep(GOAWAY_SECONDS)
        released.set()
        await stopping
    else:
        closing = True  # only counted: these calls run to completion within the grace
        await server.stop(GRACE_SECONDS)
    print(after_sigterm, flush=True)


def start_server(order: str) -> tuple[subprocess.Popen[str], int]:
    command = [sys.executable, __file__, "--serve", order]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # noqa: S603
    if server.stdout is None:
        raise RuntimeError("no pipe to the server")
    return server, int(server.stdout.readline())


async def run_client(
    server: subprocess.Popen[str], port: int, workers: int
) -> tuple[collections.Counter[str], int]:
    codes: collections.Counter[str] = collections.Counter()
    done = asyncio.Event()
    full_rate = asyncio.Event()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        echo = channel.unary_unary("/probe.Probe/Echo", _identity, _identity)

        async def worker() -> None:
            while not done.is_set():
                try:
                    await echo(b"x", timeout=10)
                    codes["OK"] += 1
                    if codes["OK"] >= 1000:
                        full_rate.set()
                except grpc.aio.AioRpcError as error:
                    codes[error.code().name] += 1

        tasks = [asyncio.create_task(worker()) for _ in range(workers)]
        await full_rate.wait()
        server.send_signal(signal.SIGTERM)
        await asyncio.to_thread(server.wait, 30)
        done.set()
        await asyncio.gather(*tasks)
    output = server.stdout.read() if server.stdout is not None else ""
    return codes, int(output.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--serve", choices=("plain", "park"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(run_server(args.serve))
        return
    print(f"grpcio {grpc.__version__}, {args.workers} calls outstanding, grace {GRACE_SECONDS} s")
    for order in ("plain", "park"):
        for run in range(1, args.runs + 1):
            server, port = start_server(order)
            codes, seen = asyncio.run(run_client(server, port, args.workers))
            print(
                f"{order:5} run {run}: CANCELLED {codes['CANCELLED']:3}  "
                f"UNAVAILABLE {codes['UNAVAILABLE']:5}  OK {codes['OK']:5}  "
                f"handler calls after SIGTERM {seen}"
            )


if __name__ == "__main__":
    main()
