"""Configurations on stores and replicas, and the store each measurement gets.

A configuration name says what runs: `full`, `off`, `proto`, `floor`, `floor-sync` (see
`benchmarks.measure`), and for `full` also the store and the number of server processes:

    full                      the in-memory store, one process (the name existing runs use)
    full-sqlite               SQLite, PAYMENTS_STORE_SQLITE_SYNCHRONOUS=full (the default)
    full-sqlite-normal        SQLite, synchronous=normal
    full-postgresql           PostgreSQL
    full-sqlite-x2            2 server processes on ONE SQLite file (likewise -normal-x2)
    full-postgresql-x2        2 server processes on ONE PostgreSQL database

`off` takes the same suffixes (`off-sqlite`, `off-postgresql`: the store without the
observability layer), named explicitly in `--configs`.

A payments-server configuration (`full`, `off`, `http` and their store names) may end in
`@NAME`: the same configuration served from another source tree of the package (`--variant
NAME=SRC`, e.g. a `git worktree` of the commit before a change), so before and after run in the
same interleaved rounds. The benchmark's own code is this tree's in both.

`expand` turns `--configs`, `--store`, `--sqlite-synchronous` and `--replicas` into that list,
and `with_variants` adds the `@NAME` configurations.
Every measurement gets a fresh store: a new SQLite file in the run's work directory, or a new
PostgreSQL database on PAYMENTS_BENCH_DATABASE_URL, dropped when the measurement ends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from benchmarks.procs import cpu_seconds
from benchmarks.report import VARIANT_MARK
from payments_service.config import ConfigError, Settings

if TYPE_CHECKING:
    from payments_service.adapters.stores.location import StoreLocation

STORES = ("memory", "sqlite", "postgresql")
SYNCHRONOUS = ("full", "normal")
KINDS = ("full", "off", "proto", "floor", "floor-sync", "http", "http-floor")
# Configurations whose load goes over JSON/HTTP (the rest call gRPC).
HTTP_KINDS = ("http", "http-floor")
# Configurations served by payments-server, hence by a variant's source tree too.
SERVER_KINDS = ("full", "off", "http")
BENCH_DATABASE_URL = "PAYMENTS_BENCH_DATABASE_URL"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
DATABASE_PREFIX = "payments_bench_"  # a database left by a killed run: DROP DATABASE it by hand

_ON_STORE = re.compile(
    r"(?P<kind>full|off)(?:-(?P<store>sqlite|postgresql)(?:-(?P<sync>normal))?)?(?:-x(?P<n>\d+))?"
)


@dataclass(frozen=True, slots=True)
class Config:
    """What one configuration name means."""

    name: str
    kind: str  # full, off, proto, floor, floor-sync, http, http-floor
    store: str = "memory"
    synchronous: str = "full"  # SQLite only
    replicas: int = 1
    variant: str | None = None  # served from the source tree of `--variant NAME=SRC`


def parse_config(name: str) -> Config:
    """`full-sqlite-normal-x2` -> Config(kind=full, store=sqlite, synchronous=normal, 2);
    `full@before` -> Config(kind=full, variant=before)."""
    base, mark, variant = name.partition(VARIANT_MARK)
    if mark:
        config = parse_config(base)
        if not variant.isidentifier() or config.kind not in SERVER_KINDS:
            raise ValueError(
                f"unknown configuration {name!r}: only {', '.join(SERVER_KINDS)} (and their "
                "store names) are served from a variant, named NAME with letters, digits, _"
            )
        return Config(name, config.kind, config.store, config.synchronous, config.replicas, variant)
    if name in ("proto", "floor", "floor-sync", *HTTP_KINDS):
        return Config(name, name)
    match = _ON_STORE.fullmatch(name)
    if (
        match is None
        or (match["n"] is not None and int(match["n"]) < 2)
        or (match["sync"] is not None and match["store"] != "sqlite")
    ):
        raise ValueError(f"unknown configuration {name!r}")
    replicas = int(match["n"] or 1)
    store = match["store"] or "memory"
    if store == "memory" and replicas > 1:
        raise ValueError(f"{name!r}: the memory store is one process only")
    return Config(name, match["kind"], store, match["sync"] or "full", replicas)


def config_name(store: str, synchronous: str = "full", replicas: int = 1) -> str:
    name = "full" if store == "memory" else f"full-{store}"
    if store == "sqlite" and synchronous != "full":
        name += f"-{synchronous}"
    return name + (f"-x{replicas}" if replicas > 1 else "")


def expand(
    configs: list[str], stores: list[str], synchronous: list[str], replicas: list[int]
) -> list[str]:
    """`full` becomes one configuration per store (x SQLite setting x replica count); the
    memory store is never replicated (each process would have its own). Order is kept."""
    names: list[str] = []
    for config in configs:
        if config != "full":
            names.append(config)
            continue
        for store in stores:
            for sync in synchronous if store == "sqlite" else ["full"]:
                for count in replicas:
                    if store == "memory" and count > 1:
                        continue
                    names.append(config_name(store, sync, count))
    return list(dict.fromkeys(names))


def with_variants(configs: list[str], variants: list[str]) -> list[str]:
    """Each payments-server configuration followed by the same from every variant, so a round
    measures before and after back to back."""
    names: list[str] = []
    for config in configs:
        names.append(config)
        if parse_config(config).kind in SERVER_KINDS:
            names += [f"{config}{VARIANT_MARK}{variant}" for variant in variants]
    return list(dict.fromkeys(names))


def source_tree(raw: str) -> tuple[str, Path]:
    """`NAME=SRC` (argparse type): a variant's name and the directory holding its
    payments_service/ package (a tree's `src/`)."""
    name, sep, path = raw.partition("=")
    src = Path(path).resolve()
    if not sep or not name.isidentifier() or not (src / "payments_service").is_dir():
        raise argparse.ArgumentTypeError(
            "expected NAME=SRC: NAME of letters, digits and _, SRC holding payments_service/"
        )
    return name, src


# --------------------------------------------------------------------------- store per measurement


@dataclass(slots=True)
class Store:
    """The store of one measurement: the server environment, and for PostgreSQL its database."""

    env: dict[str, str]
    database: str | None = None
    location: StoreLocation | None = None  # PostgreSQL: the benchmark's admin connection

    def backend_cpu(self) -> dict[int, float]:
        """PostgreSQL: CPU seconds of every backend connected to this measurement's database
        (the database is new, so these are exactly the servers' connections); else empty."""
        if self.database is None or self.location is None:
            return {}
        pids = asyncio.run(_backend_pids(self.location, self.database))
        cpu: dict[int, float] = {}
        for pid in pids:
            with contextlib.suppress(OSError):  # a backend that just ended
                cpu[pid] = cpu_seconds(pid)
        return cpu


def bench_location(env: dict[str, str] | None = None) -> StoreLocation:
    """PAYMENTS_BENCH_DATABASE_URL (default the local `test` database), parsed like the
    server's PAYMENTS_STORE_URL; an error never echoes the URL (it may hold a password)."""
    raw = (env if env is not None else os.environ).get(BENCH_DATABASE_URL) or DEFAULT_DATABASE_URL
    try:
        location = Settings.from_env({"PAYMENTS_STORE_URL": raw}).store
    except ConfigError:
        raise ValueError(f"{BENCH_DATABASE_URL} is not a valid postgresql:// URL") from None
    if location.kind != "postgresql":
        raise ValueError(f"{BENCH_DATABASE_URL} must be a postgresql:// URL")
    return location


def with_database(url: str, database: str) -> str:
    """`url` (as given, password and query included) pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@contextlib.contextmanager
def provision(config: Config, workdir: Path, label: str) -> Iterator[Store]:
    """A fresh store for one measurement of `config`; a PostgreSQL database is dropped after."""
    if config.store == "memory":
        yield Store({})
        return
    if config.store == "sqlite":
        path = (workdir / f"{label}.db").resolve()
        yield Store(
            {
                "PAYMENTS_STORE_URL": f"sqlite:///{path}",
                "PAYMENTS_STORE_SQLITE_SYNCHRONOUS": config.synchronous,
            }
        )
        return
    url = os.environ.get(BENCH_DATABASE_URL) or DEFAULT_DATABASE_URL
    location = bench_location({BENCH_DATABASE_URL: url})
    database = f"{DATABASE_PREFIX}{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(location, f'CREATE DATABASE "{database}"'))
    try:
        yield Store({"PAYMENTS_STORE_URL": with_database(url, database)}, database, location)
    finally:
        asyncio.run(_admin(location, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


async def _admin(location: StoreLocation, statement: str) -> None:
    connection = await asyncpg.connect(location.dsn, password=location.password, timeout=10)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def _backend_pids(location: StoreLocation, database: str) -> list[int]:
    connection = await asyncpg.connect(location.dsn, password=location.password, timeout=10)
    try:
        rows = await connection.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
    finally:
        await connection.close()
    return [int(row["pid"]) for row in rows]
