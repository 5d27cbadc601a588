"""`make docs`: rewrite the generated reference tables in the docs from their single sources.

Each table sits between `<!-- BEGIN GENERATED: name ... -->` and `<!-- END GENERATED: name -->`
in the file `TABLES` names (the service's own, `payments_service.reference.GENERATED`, and the
benchmark's targets); everything outside the markers is
left alone. `--check` changes nothing and exits 1 naming every stale table (the docs test runs
the same comparison).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.report import targets_reference
from payments_service.reference import GENERATED, render_into

ROOT = Path(__file__).resolve().parents[1]
TABLES = {**GENERATED, "benchmarks/README.md": {"targets": targets_reference}}


def stale_tables(root: Path = ROOT, *, write: bool = False) -> list[str]:
    """The `file: table` names whose committed text differs from the rendered one; with
    `write`, the files are rewritten with every table rendered."""
    stale = []
    for relative, tables in TABLES.items():
        path = root / relative
        committed = rendered = path.read_text()
        for name, render in tables.items():
            table = render()
            if render_into(committed, name, table) != committed:
                stale.append(f"{relative}: {name}")
            rendered = render_into(rendered, name, table)
        if write and rendered != committed:
            path.write_text(rendered)
    return stale


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    args = parser.parse_args()
    stale = stale_tables(write=not args.check)
    for name in stale:
        print(f"{'stale' if args.check else 'rewrote'}: {name}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
