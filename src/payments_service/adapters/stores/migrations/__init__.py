"""Versioned schema migrations: `<dialect>/NNNN_name.sql`, applied in order, each once.

The runner of each store records applied versions in a `schema_version` table and holds a lock
while it migrates (SQLite: BEGIN EXCLUSIVE; PostgreSQL: pg_advisory_lock), so replicas starting
together apply each migration exactly once. A database at a version newer than the code knows is
refused: an older binary must not write rows a newer schema may interpret differently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

_FILE_NAME = re.compile(r"(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql")

SCHEMA_VERSION_TABLE = "schema_version"


class SchemaTooNewError(Exception):
    """The database was migrated by a newer release than this one."""

    def __init__(self, found: int, known: int) -> None:
        self.found = found
        self.known = known
        super().__init__(
            f"the database schema is at version {found}, newer than this payments-server "
            f"knows ({known}); refusing to start: run the release that migrated it, or newer"
        )


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load(dialect: str) -> tuple[Migration, ...]:
    """The migrations of `dialect` (sqlite or postgresql), in order, numbered 1, 2, … no gaps."""
    folder = resources.files(__name__).joinpath(dialect)
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILE_NAME.fullmatch(entry.name)
        if match is not None:
            found.append(Migration(int(match["version"]), match["name"], entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"{dialect} migrations must be numbered 0001, 0002, … without gaps")
    return tuple(found)


def pending(current: int, migrations: tuple[Migration, ...]) -> tuple[Migration, ...]:
    """The migrations after version `current`; SchemaTooNewError if the database is ahead."""
    known = migrations[-1].version if migrations else 0
    if current > known:
        raise SchemaTooNewError(current, known)
    return tuple(m for m in migrations if m.version > current)
