"""The `authorization` header's grammar, at its boundaries."""

from __future__ import annotations

import pytest

from payments_service.security.authenticator import (
    MAX_KEY_LENGTH,
    UnauthenticatedError,
    bearer_key,
)


@pytest.mark.parametrize(
    ("header", "key"),
    [
        ("Bearer abc", "abc"),
        ("bearer   abc", "abc"),
        ("Bearer a.b_c~d+e/f-g==", "a.b_c~d+e/f-g=="),
        (f"Bearer {'k' * MAX_KEY_LENGTH}", "k" * MAX_KEY_LENGTH),
    ],
)
def test_a_bearer_header_yields_its_key(header: str, key: str) -> None:
    assert bearer_key((("x-request-id", "r"), ("authorization", header))) == key


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        (None, "missing"),
        ((), "missing"),
        ((("authorization", f"Bearer {'k' * (MAX_KEY_LENGTH + 1)}"),), "malformed"),
        ((("authorization", "Bearer a=b"),), "malformed"),
        ((("authorization", b"Bearer abc"),), "malformed"),
        ((("authorization", "Bearer a"), ("authorization", "Bearer a")), "malformed"),
    ],
)
def test_a_missing_or_malformed_header_is_refused_with_its_reason(
    metadata: tuple[tuple[str, str | bytes], ...] | None, reason: str
) -> None:
    with pytest.raises(UnauthenticatedError) as raised:
        bearer_key(metadata)
    assert raised.value.reason == reason
