"""Request rules that need no index: how dates in filters are read."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from service.schemas import Filters


@pytest.mark.parametrize("given, start, end", [
    ("2018-03-08", date(2018, 3, 8), date(2018, 3, 8)),
    ("2018", date(2018, 1, 1), date(2018, 12, 31)),
    (2018, date(2018, 1, 1), date(2018, 12, 31)),  # a year sent as a JSON number
    ("2016-02", date(2016, 2, 1), date(2016, 2, 29)),  # a leap year's February
    (" 2018-3 ", date(2018, 3, 1), date(2018, 3, 31)),
])
def test_a_date_filter_may_be_a_day_a_month_or_a_year(given, start, end):
    f = Filters(date_from=given, date_to=given)
    assert (f.date_from, f.date_to) == (start, end)


@pytest.mark.parametrize("given", ["0", 0, "2018-13", "March 2018", "18", True, "2018-02-30"])
def test_anything_else_is_a_plain_error_not_a_guess(given):
    with pytest.raises(ValidationError) as e:
        Filters(date_from=given)
    assert "date" in str(e.value)
