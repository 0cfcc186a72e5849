"""Dates as board papers write them ("Thursday 20 November 2014", "26TH JULY, 2018", "8 March 2018")."""

from __future__ import annotations

import re
from datetime import date

MONTHS = {
    name: i
    for i, names in enumerate(
        [
            ("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"),
            ("may",), ("june", "jun"), ("july", "jul"), ("august", "aug"),
            ("september", "sep", "sept"), ("october", "oct"), ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for name in names
}
MONTH_ALT = "|".join(sorted(MONTHS, key=len, reverse=True))  # longest first: "march" before "mar"
DAY_MONTH_YEAR = re.compile(
    rf"(?i)\b(\d{{1,2}})(?:st|nd|rd|th)?(?:\s+of)?\s+({MONTH_ALT})\.?,?\s+(\d{{4}})\b"
)
MONTH_YEAR = re.compile(rf"(?i)\b({MONTH_ALT})\.?,?\s+(\d{{4}})\b")
# Digits, not word boundaries, delimit it: file names write "cabinet__2025-01-30__pack".
ISO = re.compile(r"(?<!\d)\d{4}-\d{2}-\d{2}(?!\d)")
YEAR = re.compile(r"\b(?:19|20)\d\d\b")
YEAR_SPAN = re.compile(r"\b(?:19|20)\d\d(?:[/-]\d\d)?\b")  # a year as written, "2021-22" and "2024/25" too


def find_date(text: str) -> date | None:
    """The first full date (day, month, year) written in `text`, or None."""
    for m in DAY_MONTH_YEAR.finditer(text):
        try:
            return date(int(m.group(3)), MONTHS[m.group(2).lower()], int(m.group(1)))
        except ValueError:
            continue
    return None


def find_month_years(text: str) -> list[tuple[int, int]]:
    """(year, month) pairs named in text, e.g. "in March 2018" -> [(2018, 3)]."""
    return [(int(m.group(2)), MONTHS[m.group(1).lower()]) for m in MONTH_YEAR.finditer(text)]


def format_date(d: date | None) -> str:
    return f"{d.day} {d.strftime('%B %Y')}" if d else "date unknown"
