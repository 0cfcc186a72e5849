"""API request and response models: separate from the indexer's internal records."""

from __future__ import annotations

import calendar
import re
from datetime import date
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from indexer.dates import ISO

MAX_QUERY_CHARS = 2000
# The conversation a follow-up may carry: the answerer reads the last question, the LLM path the last
# few turns, so ten turns of capped answers is more than either needs and bounds a hostile body.
MAX_HISTORY_TURNS = 10
MAX_ANSWER_CHARS = 8000

_YEAR_MONTH = re.compile(r"(\d{4})(?:-(\d{1,2}))?")


def _date_bound(end: bool):
    """A date filter as people write it: "2018-03-08", or a year ("2018") or month ("2018-03"),
    which a from-date reads as its first day and a to-date as its last. Anything else, a bare
    number included (pydantic would read 0 as 1 January 1970), gets a plain error."""

    def parse(value):
        if isinstance(value, date) or value is None:
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # a year sent as a JSON number
        text = value.strip() if isinstance(value, str) else None
        if text and ISO.fullmatch(text):
            return text  # pydantic checks it is a real day
        if text and (m := _YEAR_MONTH.fullmatch(text)):
            year, month = int(m.group(1)), int(m.group(2)) if m.group(2) else None
            if month is None:
                return date(year, 12, 31) if end else date(year, 1, 1)
            if 1 <= month <= 12:
                return date(year, month, calendar.monthrange(year, month)[1] if end else 1)
        raise ValueError(f"{value!r} is not a date: write 2018-03-08, or a year (2018) or a month (2018-03)")

    return BeforeValidator(parse)


DateFrom = Annotated[date, _date_bound(end=False)]
DateTo = Annotated[date, _date_bound(end=True)]


class Filters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    council: str | None = None
    body: str | None = None
    document_type: str | None = None
    date_from: DateFrom | None = None
    date_to: DateTo | None = None
    decisions_only: bool = False

    @model_validator(mode="after")
    def _range(self) -> "Filters":
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValueError("date_from is after date_to")
        return self


# What _clean_query enforces, said in the OpenAPI schema too (so clients and API fuzzers know it);
# the validator stays the one that enforces it, with its plainer messages.
QUERY_SCHEMA = {"minLength": 1, "maxLength": MAX_QUERY_CHARS, "pattern": r"\S"}


def _clean_query(value: str) -> str:
    if not value or not value.strip():
        raise ValueError("the query is empty: type a question or some words to search for")
    if len(value) > MAX_QUERY_CHARS:
        raise ValueError(f"the query is {len(value)} characters long; the limit is {MAX_QUERY_CHARS}")
    return value.strip()


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(json_schema_extra=QUERY_SCHEMA)
    k: int = Field(10, ge=1, le=50)
    filters: Filters = Field(default_factory=Filters)
    # Rerank the first-stage results with the trained judge (see README, "The judge"); ignored
    # when no judge is loaded. Off by default: a plain search stays fast.
    rerank: bool = False

    _q = field_validator("query")(classmethod(lambda cls, v: _clean_query(v)))


class Citation(BaseModel):
    document_id: str
    title: str
    document_title: str
    council: str | None
    body: str | None
    document_type: str
    meeting_date: date | None
    agenda_item: str | None
    heading_path: list[str]
    page: int | None
    char_start: int
    char_end: int
    chunk_id: str | None = None
    source_url: str | None = None  # where the paper was published, when a sync fetched it from the council's site


class SearchResult(BaseModel):
    rank: int
    score: float
    text: str
    citation: Citation


class SearchResponse(BaseModel):
    query: str
    took_ms: float
    results: list[SearchResult]


class PartOut(BaseModel):
    kind: str
    title: str
    meeting_date: date | None
    agenda_item: str | None
    char_start: int
    char_end: int


class DocumentOut(BaseModel):
    id: str
    title: str
    council: str | None
    body: str | None
    document_type: str
    meeting_date: date | None
    metadata_source: str
    notes: list[str]
    chars: int
    pages: int | None
    chunks: int
    source_url: str | None = None


class DocumentDetail(DocumentOut):
    parts: list[PartOut]


class DocumentList(BaseModel):
    documents: list[DocumentOut]


class TextSpan(BaseModel):
    document_id: str
    title: str
    start: int
    end: int
    text: str
    before: str
    after: str
    total_chars: int


class Turn(BaseModel):
    question: str = Field(max_length=MAX_QUERY_CHARS)
    answer: str = Field("", max_length=MAX_ANSWER_CHARS)


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(json_schema_extra=QUERY_SCHEMA)
    history: list[Turn] = Field(default_factory=list, max_length=MAX_HISTORY_TURNS)
    filters: Filters = Field(default_factory=Filters)

    _q = field_validator("question")(classmethod(lambda cls, v: _clean_query(v)))


class AskCitation(BaseModel):
    n: int
    quote: str
    document_id: str
    title: str
    council: str | None
    body: str | None
    meeting_date: date | None
    agenda_item: str | None
    page: int | None
    char_start: int
    char_end: int
    source_url: str | None = None


class AskResponse(BaseModel):
    answer: str
    found: bool
    citations: list[AskCitation]
    passages: list[SearchResult] = Field(default_factory=list)
    answerer: str = "extractive"
    # Set when found is false: "weak_evidence" (nothing close enough), "period_not_covered" (not for
    # the year or quarter asked), "no_figure" (a figure asked for is not given), or
    # "unsure" (the judge leans against an answer but the best passages are shown with their quotes).
    reason: str | None = None
    # The judge's calibrated probability that the best quote answers the question (null without a judge).
    confidence: float | None = Field(None, ge=0.0, le=1.0)


class DecisionOut(BaseModel):
    id: str
    kind: str
    council: str | None
    body: str | None
    meeting_date: date | None
    item: str | None
    text: str
    parts: int
    citation: Citation
    score: float | None = None


class DecisionDetail(DecisionOut):
    discussion: str
    discussion_start: int
    discussion_end: int
    attendance: list[str]


class DecisionList(BaseModel):
    total: int
    decisions: list[DecisionOut]


class Timeline(BaseModel):
    query: str
    decisions: list[DecisionOut]


class ErrorOut(BaseModel):
    """Every 4xx answer: one plain sentence per problem, naming the field (not FastAPI's default list)."""

    detail: str


# Documented on the routes that can answer them, so the OpenAPI contract says what a client gets.
INVALID = {400: {"model": ErrorOut, "description": "The body is not JSON."},
           422: {"model": ErrorOut, "description": "The request was not understood; `detail` says what to fix."}}
NOT_FOUND = {404: {"model": ErrorOut, "description": "No such item; `detail` names the id."}}
