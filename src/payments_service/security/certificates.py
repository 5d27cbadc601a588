"""When PEM certificates stop being valid (their notAfter), read with the standard library.

The `ssl` module checks certificates but shows the dates of CA certificates only
(`SSLContext.get_ca_certs` skips a server's own). The date is at a fixed place of the DER
encoding (RFC 5280, 4.1), read here by walking five elements:

    Certificate ::= SEQUENCE { tbsCertificate SEQUENCE {
        [0] version OPTIONAL, serialNumber, signature, issuer,
        validity SEQUENCE { notBefore Time, notAfter Time }, ... }, ... }
    Time ::= UTCTime "YYMMDDHHMMSSZ" | GeneralizedTime "YYYYMMDDHHMMSSZ"

`cryptography` reads it too, but would be a runtime dependency for one date. The files are
checked with `ssl` first (`tls.check_certificates`), so this reads well-formed certificates.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime

_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.DOTALL
)
_SEQUENCE = 0x30
_VERSION = 0xA0  # [0] EXPLICIT, constructed
_UTC_TIME = 0x17
_GENERALIZED_TIME = 0x18
_FIELDS_BEFORE_VALIDITY = 3  # serialNumber, signature, issuer


def earliest_not_after(pem: bytes) -> datetime:
    """The earliest notAfter of the certificates in `pem` (a chain expires with its first
    certificate to expire). ValueError when it holds none, or one cannot be read."""
    bodies = _PEM_CERTIFICATE.findall(pem)
    if not bodies:
        raise ValueError("no PEM certificate")
    try:
        ders = [base64.b64decode(b"".join(body.split()), validate=True) for body in bodies]
    except binascii.Error as exc:
        raise ValueError("a PEM certificate is not valid base64") from exc
    return min(not_after(der) for der in ders)


def not_after(der: bytes) -> datetime:
    """The notAfter (UTC) of one DER-encoded X.509 certificate."""
    _, certificate, _ = _element(der, 0, _SEQUENCE)
    _, position, _ = _element(der, certificate, _SEQUENCE)  # tbsCertificate
    if der[position] == _VERSION:
        position = _element(der, position)[2]
    for _ in range(_FIELDS_BEFORE_VALIDITY):
        position = _element(der, position)[2]
    _, validity, _ = _element(der, position, _SEQUENCE)
    after_not_before = _element(der, validity)[2]
    tag, start, end = _element(der, after_not_before)
    return _time(tag, der[start:end])


def _element(der: bytes, offset: int, expected: int | None = None) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at `offset`."""
    if offset + 2 > len(der):
        raise ValueError("truncated certificate")
    tag, length, start = der[offset], der[offset + 1], offset + 2
    if expected is not None and tag != expected:
        raise ValueError(f"unexpected DER tag 0x{tag:02x} at {offset}")
    if length & 0x80:  # long form: the next (length & 0x7f) bytes hold the length
        count = length & 0x7F
        if not 1 <= count <= 4:  # a certificate's lengths fit in 4 bytes
            raise ValueError(f"unsupported DER length at {offset}")
        length, start = int.from_bytes(der[start : start + count], "big"), start + count
    end = start + length
    if end > len(der):
        raise ValueError("truncated certificate")
    return tag, start, end


def _time(tag: int, value: bytes) -> datetime:
    text = value.decode("ascii")
    if tag == _UTC_TIME:  # RFC 5280 4.1.2.5.1: YY >= 50 is 19YY, else 20YY
        year = int(text[:2])
        text = f"{year + (1900 if year >= 50 else 2000)}{text[2:]}"
    elif tag != _GENERALIZED_TIME:
        raise ValueError(f"unexpected DER tag 0x{tag:02x} for a time")
    return datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=UTC)
