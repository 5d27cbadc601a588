"""The concurrency limit's bookkeeping: admits up to the limit, counts refusals, gives places
back; a limit below 1 is a programming error."""

from __future__ import annotations

import pytest

from payments_service.transport.admission import ConcurrencyLimit


def test_the_limit_admits_up_to_its_size_counts_refusals_and_gives_places_back() -> None:
    limit = ConcurrencyLimit(2)
    assert [limit.try_enter() for _ in range(3)] == [True, True, False]
    assert (limit.in_flight, limit.rejected) == (2, 1)
    limit.leave()
    assert limit.try_enter() is True
    assert (limit.in_flight, limit.rejected) == (2, 1)


@pytest.mark.parametrize("size", [0, -1])
def test_a_limit_below_one_is_refused(size: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ConcurrencyLimit(size)
