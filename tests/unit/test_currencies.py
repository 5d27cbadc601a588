"""The currency allow-list is the full active ISO 4217 list, not a handful."""

from __future__ import annotations

import pytest

from payments_service.domain.currencies import ACTIVE_CURRENCIES


def test_the_list_is_the_full_iso_4217_list_one() -> None:
    # List One has ~180 active codes; a hand-picked "USD EUR GBP" list would fail here.
    assert 170 <= len(ACTIVE_CURRENCIES) <= 185
    assert all(len(code) == 3 and code.isascii() and code.isupper() for code in ACTIVE_CURRENCIES)


@pytest.mark.parametrize(
    "code", ["USD", "EUR", "GBP", "JPY", "CHF", "CNY", "INR", "BRL", "KWD", "CLF", "XOF", "XCG"]
)
def test_active_codes_are_accepted(code: str) -> None:
    assert code in ACTIVE_CURRENCIES


@pytest.mark.parametrize(
    "code", ["HRK", "ZWL", "ANG", "VEF", "MRO", "STD", "CUC", "SLL", "DEM", "XTS", "XXX"]
)
def test_withdrawn_test_and_no_currency_codes_are_rejected(code: str) -> None:
    assert code not in ACTIVE_CURRENCIES
