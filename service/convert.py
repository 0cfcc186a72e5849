"""Internal records -> API schemas, in one place."""

from __future__ import annotations

from indexer.records import Chunk, Decision
from indexer.store import LoadedIndex
from service.schemas import AskResponse, Citation, DecisionOut, SearchResult


def chunk_citation(index: LoadedIndex, c: Chunk) -> Citation:
    doc = index.documents[c.doc_id]
    return Citation(
        document_id=c.doc_id, title=c.title, document_title=doc.title, council=c.council, body=c.body,
        document_type=c.document_type, meeting_date=c.meeting_date, agenda_item=c.agenda_item,
        heading_path=list(c.heading_path), page=c.page, char_start=c.char_start, char_end=c.char_end,
        chunk_id=c.id, source_url=doc.source_url,
    )


def search_result(index: LoadedIndex, rank: int, score: float, c: Chunk) -> SearchResult:
    return SearchResult(rank=rank, score=round(score, 6), text=c.text, citation=chunk_citation(index, c))


def decision_out(index: LoadedIndex, d: Decision, score: float | None = None) -> DecisionOut:
    doc = index.documents[d.doc_id]
    citation = Citation(
        document_id=d.doc_id, title=d.item or doc.title, document_title=doc.title, council=d.council, body=d.body,
        document_type="minutes" if d.kind == "decision" else "report", meeting_date=d.meeting_date,
        agenda_item=d.item, heading_path=list(d.heading_path), page=d.page,
        char_start=d.char_start, char_end=d.char_end, source_url=doc.source_url,
    )
    return DecisionOut(id=d.id, kind=d.kind, council=d.council, body=d.body, meeting_date=d.meeting_date,
                       item=d.item, text=d.text, parts=d.parts, citation=citation,
                       score=None if score is None else round(score, 6))


def with_source_urls(index: LoadedIndex, answer: AskResponse) -> AskResponse:
    """The answer's citations, each linking back to where its paper was published."""
    for c in answer.citations:
        if c.source_url is None and c.document_id in index.documents:
            c.source_url = index.documents[c.document_id].source_url
    return answer
