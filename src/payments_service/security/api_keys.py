"""API keys: the file that lists them, and the reloadable ring the server checks callers against.

`PAYMENTS_API_KEYS_FILE` has one key per line, `<merchant_id> <sha256 hex of the key>`; `#`
starts a comment, blank lines are ignored, and a merchant may have several lines (rotation). The
server only ever holds SHA-256 digests: a key is shown once, by `payments-server keys new`.

Comparison. The presented key is hashed, and the digest is compared with *every* entry through
`hmac.compare_digest`, without stopping at a match: the time taken depends only on how many keys
are listed, never on which entry (or how much of one) matched. A dict lookup by digest would also
be safe in practice (the attacker controls the key, not its digest, so learning how far a digest
matched helps nothing), but it is not constant time, and the scan costs microseconds for the tens
of keys a service like this lists (docs/security.md).

Errors never quote a line of the file: a line may be a key pasted by mistake.

Operations. A reload that fails keeps the previous keys (a revoked key then stays valid), so it
is logged at error level and counted (`reload_failures`, `payments_api_keys_reload_failures_total`).
A keys file that others can read, or a group other than the server's own, gets a warning at
start and at every reload: the digests are not keys, but they are what an attacker would need to
guess keys offline, and who may read the file is who may change it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from payments_service.config import ConfigError, Settings, variable
from payments_service.security.principal import Principal

log = structlog.get_logger(__name__)

API_KEYS_VARIABLE = variable(Settings, "api_keys_file").name
MERCHANT_ID_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_HEX_DIGEST = re.compile(r"[0-9A-Fa-f]{64}")
_LINE_SHAPE = "expected '<merchant_id> <sha256 hex of the key>'"
KEY_BYTES = 32  # entropy of a key made by `new_api_key`: 256 bits


@dataclass(frozen=True, slots=True)
class KeyEntry:
    merchant_id: str
    digest: bytes  # SHA-256 of the key, 32 bytes
    principal: Principal = field(init=False, repr=False, compare=False)  # who the key is

    def __post_init__(self) -> None:
        object.__setattr__(self, "principal", Principal(self.merchant_id, self.key_id))

    @property
    def key_id(self) -> str:
        """A name for the key that is safe to log: the first 8 hex digits of its SHA-256 (32
        bits of a digest of 256 random bits say nothing usable about the key)."""
        return self.digest.hex()[:8]


def digest_of(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def new_api_key() -> str:
    """A new random key: 32 bytes from the OS CSPRNG, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(KEY_BYTES)


def key_file_line(merchant_id: str, key: str) -> str:
    """The line that lists `key` for `merchant_id` in the keys file."""
    if MERCHANT_ID_SHAPE.fullmatch(merchant_id) is None:
        raise ValueError("merchant id must be 1 to 64 characters of A-Z a-z 0-9 _ -")
    return f"{merchant_id} {digest_of(key).hex()}"


def parse_key_file(content: bytes) -> tuple[KeyEntry, ...]:
    """Every key the file lists; ValueError naming the first bad line (never quoting it)."""
    entries: list[KeyEntry] = []
    first_seen: dict[bytes, int] = {}
    for number, raw in enumerate(content.split(b"\n"), start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"line {number}: not UTF-8 text") from None
        fields = text.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) != 2:
            raise ValueError(f"line {number}: {_LINE_SHAPE}")
        merchant_id, hex_digest = fields
        if MERCHANT_ID_SHAPE.fullmatch(merchant_id) is None:
            raise ValueError(
                f"line {number}: merchant id must be 1 to 64 characters of A-Z a-z 0-9 _ -"
            )
        if _HEX_DIGEST.fullmatch(hex_digest) is None:
            raise ValueError(f"line {number}: the key digest must be 64 hex digits (SHA-256)")
        digest = bytes.fromhex(hex_digest)
        if digest in first_seen:
            raise ValueError(
                f"line {number}: the same key is already listed on line {first_seen[digest]}"
            )
        first_seen[digest] = number
        entries.append(KeyEntry(merchant_id, digest))
    return tuple(entries)


def load_key_file(path: str) -> tuple[KeyEntry, ...]:
    """The file's keys, or ConfigError naming the variable (and the line, when one is bad)."""
    try:
        content = Path(path).read_bytes()
        return parse_key_file(content)
    except OSError as exc:
        reason = f"cannot read the file: {exc.strerror or type(exc).__name__}"
        raise ConfigError(f"invalid {API_KEYS_VARIABLE}={path!r}: {reason}") from None
    except ValueError as exc:
        raise ConfigError(f"invalid {API_KEYS_VARIABLE}={path!r}: {exc}") from None


def exposed_mode(path: str) -> str | None:
    """The file's permission bits (e.g. "0644") when someone besides the server's own user and
    primary group can read it, else None (also when it cannot be stat'ed: reading it reports
    that)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    by_others = info.st_mode & stat.S_IROTH
    by_another_group = info.st_mode & stat.S_IRGRP and info.st_gid != os.getegid()
    return f"{stat.S_IMODE(info.st_mode):04o}" if by_others or by_another_group else None


class KeyRing:
    """The keys currently accepted. `reload()` swaps them atomically, or keeps them if the file
    has become bad, so a typo during rotation never locks every caller out."""

    def __init__(self, path: str, entries: tuple[KeyEntry, ...]) -> None:
        self.path = path
        self._entries = entries
        self.reload_failures = 0  # reloads that failed and kept the previous keys

    @classmethod
    def load(cls, path: str) -> KeyRing:
        return cls(path, load_key_file(path))

    def __len__(self) -> int:
        return len(self._entries)

    def merchants(self) -> frozenset[str]:
        """The merchants that currently have at least one key."""
        return frozenset(entry.merchant_id for entry in self._entries)

    def principal_for(self, key: str) -> Principal | None:
        """The caller `key` authenticates (its merchant, and the key's id), or None. Constant
        time in which entry matched."""
        presented = digest_of(key)
        found: Principal | None = None
        for entry in self._entries:  # no early exit: see the module docstring
            if hmac.compare_digest(entry.digest, presented):
                found = entry.principal
        return found

    def warn_if_exposed(self) -> None:
        """Log a warning when the file is readable by others (see `exposed_mode`)."""
        mode = exposed_mode(self.path)
        if mode is not None:
            log.warning(
                "api_keys_file_readable_by_others",
                variable=API_KEYS_VARIABLE,
                mode=mode,
                expected="0600, or 0640 with the server's own group",
            )

    def reload(self) -> bool:
        """Re-read the file (on SIGHUP). A bad file keeps the old keys, logs one error and is
        counted in `reload_failures`."""
        self.warn_if_exposed()
        try:
            entries = load_key_file(self.path)
        except ConfigError as exc:
            self.reload_failures += 1
            log.error(
                "api_keys_reload_failed",
                error=str(exc),
                keys=len(self._entries),
                kept="the previous keys: a key removed from the file is still accepted",
            )
            return False
        self._entries = entries
        log.info(
            "api_keys_reloaded",
            keys=len(entries),
            merchants=len({entry.merchant_id for entry in entries}),
        )
        return True
