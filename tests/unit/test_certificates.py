"""`earliest_not_after` reads a certificate's notAfter as `cryptography` does, in both time
encodings, takes the earliest of a chain, and refuses what is not a certificate."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from payments_service.security.certificates import earliest_not_after


def leaf_pem(not_after: datetime) -> bytes:
    return trustme.CA().issue_cert("localhost", not_after=not_after).cert_chain_pems[0].bytes()


@pytest.mark.parametrize(
    "not_after",
    [
        datetime(2031, 5, 17, 8, 30, 15, tzinfo=UTC),  # UTCTime, 20YY
        datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC),  # the last UTCTime year
        datetime(2050, 1, 1, 0, 0, 0, tzinfo=UTC),  # GeneralizedTime from 2050 on
        datetime(2999, 6, 1, 12, 0, 0, tzinfo=UTC),
    ],
    ids=["utctime", "utctime-2049", "generalizedtime-2050", "generalizedtime-2999"],
)
def test_the_not_after_of_a_certificate_is_read_as_cryptography_reads_it(
    not_after: datetime,
) -> None:
    pem = leaf_pem(not_after)
    assert x509.load_pem_x509_certificate(pem).not_valid_after_utc == not_after
    assert earliest_not_after(pem) == not_after


def test_a_utctime_year_from_50_is_in_the_twentieth_century() -> None:
    pem = leaf_pem(datetime(2030, 1, 1, tzinfo=UTC))
    der = x509.load_pem_x509_certificate(pem).public_bytes(encoding=Encoding.DER)
    # Rewrite the notAfter "300101000000Z" into "500101000000Z" (RFC 5280: 1950).
    patched = der.replace(b"300101000000Z", b"500101000000Z")
    assert patched != der
    assert earliest_not_after(_pem(patched)) == datetime(1950, 1, 1, tzinfo=UTC)


def test_a_chain_expires_with_its_first_certificate_to_expire() -> None:
    late = leaf_pem(datetime(2040, 1, 1, tzinfo=UTC))
    early = leaf_pem(datetime(2030, 1, 1, tzinfo=UTC))
    assert earliest_not_after(late + early) == datetime(2030, 1, 1, tzinfo=UTC)
    assert earliest_not_after(early + late) == datetime(2030, 1, 1, tzinfo=UTC)


def test_a_chain_with_an_intermediate_ca_is_read() -> None:
    root = trustme.CA()
    issued = root.create_child_ca().issue_cert("localhost")
    chain = b"".join(blob.bytes() for blob in issued.cert_chain_pems)
    expected = min(
        x509.load_pem_x509_certificate(blob.bytes()).not_valid_after_utc
        for blob in issued.cert_chain_pems
    )
    assert len(issued.cert_chain_pems) == 2
    assert earliest_not_after(chain) == expected


@pytest.mark.parametrize(
    ("pem", "message"),
    [
        (b"", "no PEM certificate"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "no PEM certificate"),
        (b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n", "not valid base64"),
        (b"-----BEGIN CERTIFICATE-----\nMAM=\n-----END CERTIFICATE-----\n", "truncated"),
        (b"-----BEGIN CERTIFICATE-----\nAgEA\n-----END CERTIFICATE-----\n", "unexpected DER tag"),
        (b"-----BEGIN CERTIFICATE-----\nMIU=\n-----END CERTIFICATE-----\n", "DER length"),
    ],
    ids=["empty", "a-key", "bad-base64", "truncated", "not-a-sequence", "huge-length"],
)
def test_what_is_not_a_certificate_is_refused(pem: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        earliest_not_after(pem)


def test_a_time_of_another_type_is_refused() -> None:
    der = x509.load_pem_x509_certificate(leaf_pem(datetime(2030, 1, 1, tzinfo=UTC))).public_bytes(
        encoding=Encoding.DER
    )
    at = der.index(b"300101000000Z") - 2  # the tag and length of the notAfter UTCTime
    assert der[at] == 0x17
    patched = der[:at] + b"\x04" + der[at + 1 :]  # an OCTET STRING
    with pytest.raises(ValueError, match="for a time"):
        earliest_not_after(_pem(patched))


def _pem(der: bytes) -> bytes:
    body = base64.encodebytes(der)
    return b"-----BEGIN CERTIFICATE-----\n" + body + b"-----END CERTIFICATE-----\n"
