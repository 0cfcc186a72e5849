"""Decision records: resolutions from minutes and recommendations from reports.

Built from the structure stage's resolution/recommendation blocks, so a decision carries the
date of the meeting that made it (the minutes' own date, not the pack's cover date).
"""

from __future__ import annotations

import re

from indexer.records import Block, Decision, DocumentMeta, ParsedDocument, Part
from indexer.structure import NUMBERED_PART, item_title

_MEMBERS_HEAD = re.compile(r"(?i)^(board members|members present|present)\b")


def extract_decisions(
    doc: ParsedDocument, meta: DocumentMeta, parts: tuple[Part, ...], blocks: tuple[Block, ...]
) -> list[Decision]:
    out: list[Decision] = []
    for block in blocks:
        if block.kind not in ("resolution", "recommendation"):
            continue
        part = parts[block.part]
        els = doc.elements[block.first:block.last]
        start, end = els[0].start, els[-1].end
        numbered = sum(1 for e in els if NUMBERED_PART.match(e.text))
        ctx_start, ctx_end = _context(doc, parts, blocks, block)
        if block.kind == "resolution":
            item = block.minute_item or (f"Item {part.agenda_item}" if part.agenda_item else None)
        else:
            item = f"Item {part.agenda_item}: {item_title(part, meta)}" if part.agenda_item else part.title
        out.append(
            Decision(
                id=f"{doc.doc_id}:{'d' if block.kind == 'resolution' else 'r'}{start}",
                kind="decision" if block.kind == "resolution" else "recommendation",
                doc_id=doc.doc_id,
                council=meta.council,
                body=meta.body,
                meeting_date=part.meeting_date,
                item=item,
                text=doc.text[start:end],
                char_start=start,
                char_end=end,
                page=els[0].page,
                parts=max(numbered, 1),
                heading_path=block.heading_path,
                context_start=ctx_start,
                context_end=ctx_end,
                attendance=_attendance(doc, parts, blocks, block) if block.kind == "resolution" else (),
            )
        )
    return out


def _context(doc, parts, blocks, block) -> tuple[int, int]:
    """The span of the whole minute item (or report section) the block belongs to."""
    same = [
        b for b in blocks
        if b.part == block.part and b.minute_item == block.minute_item
        and (block.minute_item is not None or b.heading_path[:2] == block.heading_path[:2])
    ]
    first = min(b.first for b in same)
    last = max(b.last for b in same)
    # For a minute item, begin at its heading, which sits just before its first block.
    if block.minute_item and first > parts[block.part].first:
        first -= 1
    return doc.elements[first].start, doc.elements[last - 1].end


def _attendance(doc, parts, blocks, block) -> tuple[str, ...]:
    """Who the minutes record as present: the lines before the first minute item."""
    part = parts[block.part]
    lines = []
    for e in doc.elements[part.first:min(part.last, part.first + 40)]:
        if re.match(r"^\d{1,2}\.\s+[A-Z]", e.text):
            break
        lines.append(e.text)
    return tuple(lines[1:30])
