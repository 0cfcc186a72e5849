from __future__ import annotations

from collections import Counter
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from service.deps import ServicesDep
from service.schemas import INVALID, NOT_FOUND, DocumentDetail, DocumentList, DocumentOut, PartOut, TextSpan

router = APIRouter(tags=["documents"], responses=INVALID)


def _doc_out(s, rec, counts, cls=DocumentOut, **extra):
    return cls(id=rec.id, title=rec.title, council=rec.council, body=rec.body, document_type=rec.document_type,
               meeting_date=rec.meeting_date, metadata_source=rec.metadata_source, notes=list(rec.notes),
               chars=rec.chars, pages=rec.pages, chunks=counts.get(rec.id, 0), source_url=rec.source_url, **extra)


def _get(s, document_id: str):
    rec = s.index.documents.get(document_id)
    if rec is None:
        raise HTTPException(status_code=404, detail=f"no document with id {document_id!r}")
    return rec


@router.get("/documents", response_model=DocumentList)
def list_documents(s: ServicesDep) -> DocumentList:
    counts = Counter(c.doc_id for c in s.index.chunks)
    docs = sorted(s.index.documents.values(), key=lambda r: (r.meeting_date is None, r.meeting_date), reverse=False)
    return DocumentList(documents=[_doc_out(s, r, counts) for r in docs])


@router.get("/documents/{document_id}", response_model=DocumentDetail, responses=NOT_FOUND)
def get_document(document_id: str, s: ServicesDep) -> DocumentDetail:
    rec = _get(s, document_id)
    counts = Counter(c.doc_id for c in s.index.chunks)
    parts = [PartOut(kind=p.kind, title=p.title, meeting_date=p.meeting_date, agenda_item=p.agenda_item,
                     char_start=p.char_start, char_end=p.char_end) for p in rec.parts]
    return _doc_out(s, rec, counts, DocumentDetail, parts=parts)


@router.get("/documents/{document_id}/text", response_model=TextSpan, responses=NOT_FOUND)
def get_text(
    document_id: str,
    s: ServicesDep,
    start: Annotated[int, Query(ge=0)] = 0,
    end: Annotated[int | None, Query(ge=0)] = None,
    context: Annotated[int, Query(ge=0, le=5000)] = 300,
) -> TextSpan:
    """Exactly text[start:end] of the document's extracted text, with `context` characters either side."""
    rec = _get(s, document_id)
    text = s.index.texts[document_id]
    end = len(text) if end is None else end
    if end > len(text) or start > end:
        raise HTTPException(status_code=422, detail=f"span {start}-{end} is outside the document (0-{len(text)})")
    return TextSpan(document_id=document_id, title=rec.title, start=start, end=end, text=text[start:end],
                    before=text[max(0, start - context):start], after=text[end:end + context], total_chars=len(text))
