"""`payments-server keys new MERCHANT_ID`: make an API key, show it once, print its file line.

The key is printed here and nowhere else; the server only ever sees the line with its SHA-256.
The output is deliberately not a valid keys file: appending all of it by mistake makes the next
reload fail (and keep the old keys) instead of leaving a key in clear in the file.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, TextIO

from payments_service.security.api_keys import (
    API_KEYS_VARIABLE,
    MERCHANT_ID_SHAPE,
    key_file_line,
    new_api_key,
)

if TYPE_CHECKING:
    from collections.abc import Sequence


def _merchant_id(raw: str) -> str:
    if MERCHANT_ID_SHAPE.fullmatch(raw) is None:
        raise argparse.ArgumentTypeError("must be 1 to 64 characters of A-Z a-z 0-9 _ -")
    return raw


def keys_main(argv: Sequence[str], out: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="payments-server keys", description="Manage the API keys of merchants."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("new", help="make a new key for a merchant and show it once")
    new.add_argument("merchant_id", type=_merchant_id, help="1-64 characters of A-Z a-z 0-9 _ -")
    args = parser.parse_args(list(argv))  # exits 2 with a usage line on a bad command
    out = out or sys.stdout
    key = new_api_key()
    print(f"API key for merchant {args.merchant_id} (shown once, keep it secret):", file=out)
    print(f"  {key}", file=out)
    print(f"Append this line to the file named by {API_KEYS_VARIABLE},", file=out)
    print("then send SIGHUP to the server (kill -HUP <pid>) to load it:", file=out)
    print(f"  {key_file_line(args.merchant_id, key)}", file=out)
    return 0
