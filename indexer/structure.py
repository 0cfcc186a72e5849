"""Recover the structure a reader of board papers relies on.

An agenda pack is one file holding several documents: the agenda, the minutes of an
*earlier* meeting (which carry that meeting's date), one report per agenda item and their
appendices. Inside minutes, each minute item and its resolution block; inside reports,
headings, the recommendations block and tables with their header row.

Entry point: :func:`structure`, ParsedDocument + DocumentMeta -> Structure (parts, blocks).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date

from indexer.dates import find_date, format_date
from indexer.parse import CONTACT_LINE
from indexer.records import Block, DocumentMeta, Element, ParsedDocument, Part

MINUTES_START = re.compile(
    r"(?i)^(?:decisions of the\b.*\b(?:board|committee)\b|(?:draft\s+)?minutes(?: of proceedings)?$"
    r"|.*\bminutes of proceedings\b|minutes of (?:a|the) meeting of\b)"
)
# Kent's minutes open with one long line: "MINUTES of a meeting of the Cabinet held in the
# Council Chamber, Sessions House, County Hall, Maidstone on Thursday, 9 January 2025."
MINUTES_HELD = re.compile(r"(?i)^minutes of (?:a|the) meeting of\b.*\bheld\b.*\b\d{4}\.?$")
# The stamp printed on a report's first page ("AGENDA ITEM 6"), not "(Agenda Item 6)" in a minute.
AGENDA_STAMP = re.compile(r"(?i)(?:^|\s)agenda item\s+(\d{1,2}[a-z]?)\s*$")
# "Title<TAB>..." (Barnet, Westminster) or "Subject: ..." (Kent's From/To/Subject header).
REPORT_TITLE_ROW = re.compile(r"(?i)^(?:title:?|subject:)\s*\t?\s*(.+)$")
REPORT_BY = re.compile(r"(?i)^report (?:by|of)\b")
APPENDIX_START = re.compile(r"(?i)^appendix\s+([a-z0-9]{1,3})\b")
# A report's header row listing what is printed after it: "Enclosures<TAB>Appendix 1: Self
# Evaluation Framework Appendix 2: ..." (Barnet), one title per "Appendix n".
ENCLOSURES_ROW = re.compile(r"(?i)^enclosures?\s*\t\s*(.+)$")
ENCLOSURE = re.compile(r"(?i)\bappendix\s+([a-z0-9]{1,3})\s*(?:[:–-]\s*)?")
# Printed packs pad each separately printed paper to whole sheets, so a blank page is where one
# paper ends and the next one begins.
BLANK_PAGE = re.compile(r"(?i)^this page (?:is )?intentionally (?:been )?left blank\.?$")
# "6. SCREENING UPDATE (Agenda Item 6):", "4. CHILDREN & YOUNG PEOPLE MENTAL HEALTH ...",
# "5. 24/00115 - Kent County Council Integrated Care Strategy" (a Kent decision number first).
MINUTE_ITEM = re.compile(
    r"^(\d{1,2})\.\s+((?:\d{2}/\d{4,5}\s*[-–]\s*)?[A-Z][A-Z0-9 ,.'’&()\-–:/]*?[A-Z)])"
    r"\s*(?:\(agenda item \d+[a-z]?\))?\s*:?$",
    re.I,
)
# A report's "Title" row sits within four lines below its "AGENDA ITEM n" stamp (the board
# and the meeting date between), so a Title row that near a stamp belongs to that report.
REPORT_HEADER_SPAN = 5
AGENDA_ROW = re.compile(r"^(\d{1,2})\.?\t([^\t]+)")
RESOLUTION_START = re.compile(r"\bRESOLVED\b|\bResolved\s*:|(?i:\bit was (?:therefore |further )?resolved\b)")
NUMBERED_PART = re.compile(r"^(?:\(?[0-9ivx]{1,4}[.)]|\d+(?:\.\d+)+\.?|\(?[a-h]\))\s+\S")
RECOMMENDATIONS_HEAD = re.compile(
    r"(?i)^(?:\d+\.?\s*)?(?:(?:officers?'?\s+)?recommendations?(?:\s*\(s\))?"
    r"|key matters for the board(?:'s consideration)?)\s*:?$"
)
ASKED_TO = re.compile(
    r"(?i)\b(?:board|committee|cabinet|council|panel|cabinet member(?: for [^.;:]{1,80}?)?)"
    r" (?:is|are) (?:asked|invited|recommended) to\b|^it is recommended\b"
)


@dataclass(frozen=True)
class Structure:
    parts: tuple[Part, ...]
    blocks: tuple[Block, ...]
    detected: DocumentMeta  # what the front sheet said, for files without metadata


def structure(doc: ParsedDocument, meta: DocumentMeta) -> Structure:
    """Split a parsed document into parts (pack documents) and blocks (chunkable units)."""
    els = doc.elements
    parts = _find_parts(els, meta)
    blocks: list[Block] = []
    for p_index, part in enumerate(parts):
        blocks.extend(_blocks_in_part(els, part, p_index, meta))
    return Structure(tuple(parts), tuple(blocks), detect_front_sheet(els, doc.running))


# ---------------------------------------------------------------- parts


def _find_parts(els: tuple[Element, ...], meta: DocumentMeta) -> list[Part]:
    is_pack = meta.document_type == "agenda_pack"
    first_kind = "agenda" if is_pack else meta.document_type
    parts: list[Part] = []
    # A paper its publisher filed under an agenda item is, as a whole, that item's.
    cur = Part(first_kind, meta.title, meta.meeting_date, None if is_pack else meta.agenda_item, 0, 0)
    agenda: dict[str, str] = {}
    report_title = meta.title  # of the report the current appendix belongs to
    enclosures: dict[str, str] = {}  # that report's listed appendices, label -> title

    def start(new: Part, at: int) -> None:
        nonlocal cur, report_title, enclosures
        if at > cur.first:
            parts.append(replace(cur, last=at))
        cur = replace(new, first=at)
        if new.kind != "appendix":
            report_title, enclosures = new.title, {}

    for i, e in enumerate(els):
        t = e.text
        short = len(t.split()) <= 14
        if cur.kind == "agenda":
            _collect_agenda_item(e, agenda)
        if not is_pack:
            continue
        if starts_minutes(e):
            if cur.kind == "minutes" and i - cur.first <= 6:
                continue  # "DRAFT MINUTES" then "... MINUTES OF PROCEEDINGS": one heading
            when = _date_near(els, i, 10)
            body = meta.body or "the board"
            title = f"Minutes of the {body} meeting of {format_date(when)}" if when else "Minutes"
            start(Part("minutes", title, when, None, i, i), i)
            continue
        stamp = AGENDA_STAMP.search(t) if (short or e.kind == "table") else None
        if stamp and len(t.split()) <= 12:
            item = stamp.group(1)
            if (
                cur.kind == "minutes" and cur.agenda_item is None and i - cur.first <= 12
                and _title_near(els, i, REPORT_HEADER_SPAN) is None
            ):
                # The stamp on the minutes' own first page. A stamp with a report's header
                # table just below it opens the next report, however short the minutes were.
                cur = replace(cur, agenda_item=item)
                continue
            title = _title_near(els, i) or agenda.get(item) or f"Agenda item {item}"
            start(Part("report", title, meta.meeting_date, item, i, i), i)
            continue
        begin = _unstamped_report_start(els, i)
        if begin is not None and not (cur.kind == "report" and i - cur.first < REPORT_HEADER_SPAN):
            # A report header with no "AGENDA ITEM n" stamp above it (the stamp, when there is
            # one, has already started this report a line or three earlier).
            title = REPORT_TITLE_ROW.match(t).group(1).strip()
            item = _match_agenda(title, agenda, _last_item(parts, cur))
            start(Part("report", _display_title(title), meta.meeting_date, item, begin, begin), begin)
            continue
        row = REPORT_TITLE_ROW.match(t)
        if row and cur.kind != "agenda" and any(els[j].text.lower().startswith("date:") for j in range(max(0, i - 3), i)):
            # Westminster-style report header: "City of Westminster", board, Date:, Title: rows.
            begin = i
            for j in range(i - 1, max(-1, i - 6), -1):
                if re.match(r"(?i)^(city of westminster|westminster city council)$", els[j].text):
                    begin = j
                    break
            if cur.kind == "report" and cur.first >= begin - 2:
                continue
            title = row.group(1).strip()
            item = _match_agenda(title, agenda, _last_item(parts, cur))
            start(Part("report", _display_title(title), meta.meeting_date, item, begin, begin), begin)
            continue
        if (
            is_pack and cur.kind != "agenda" and re.match(r"(?i)^(westminster city council|city of westminster)$", t)
            and i + 3 < len(els) and any(REPORT_BY.match(els[j].text) for j in range(i + 1, i + 4))
        ):
            # Another report header style: council, board and date, "REPORT BY ...", title.
            k = next(j for j in range(i + 1, i + 4) if REPORT_BY.match(els[j].text))
            title = els[k + 1].text if k + 1 < len(els) else "Report"
            item = _match_agenda(title, agenda, _last_item(parts, cur))
            start(Part("report", _display_title(title), meta.meeting_date, item, i, i), i)
            continue
        if cur.kind == "report" and (listed := ENCLOSURES_ROW.match(t)):
            enclosures = _enclosures(listed.group(1))
        if (
            short
            and e.kind in ("heading", "title", "text")
            and cur.kind in ("report", "appendix")
            and APPENDIX_START.match(t)
            and i - cur.first > 3
        ):
            start(Part("appendix", f"{report_title} – {t}", cur.meeting_date, cur.agenda_item, i, i), i)
            continue
        if (
            short
            and e.kind in ("heading", "title")
            and cur.kind in ("report", "appendix")
            and i - cur.first > (REPORT_HEADER_SPAN if cur.kind == "report" else 1)
            and BLANK_PAGE.match(els[i - 1].text)
        ):
            # A paper printed after a report without an "Appendix n" or "AGENDA ITEM n" heading:
            # the next agenda item when its title says so, else one of the report's enclosures.
            heading = _display_title(_paper_heading(els, i))
            item = _next_item_titled(heading, agenda, _last_item(parts, cur))
            if item is not None:
                start(Part("report", heading, meta.meeting_date, item, i, i), i)
            else:
                label = _enclosure_titled(heading, enclosures)
                name = f"Appendix {label}: {enclosures[label]}" if label else heading
                start(Part("appendix", f"{report_title} – {name}", cur.meeting_date, cur.agenda_item, i, i), i)
    parts.append(replace(cur, last=len(els)))
    return [p for p in parts if p.last > p.first]


def starts_minutes(e: Element) -> bool:
    """Whether an element is the heading that opens a set of minutes."""
    if e.kind == "table":
        return False
    words = len(e.text.split())
    return bool((words <= 14 and MINUTES_START.match(e.text)) or (words <= 40 and MINUTES_HELD.match(e.text)))


def _unstamped_report_start(els: tuple[Element, ...], i: int) -> int | None:
    """Where a report begins if els[i] is its header's title line: Barnet's table or Kent's From/To/Subject."""
    begin = _report_header_start(els, i)
    return begin if begin is not None else _from_to_header_start(els, i)


def _report_header_start(els: tuple[Element, ...], i: int) -> int | None:
    """Where a Barnet report's first page begins, if els[i] is its "Title<TAB>..." header row.

    The header table is "Title", then "Report of"; above it the meeting's name and date
    ("Health and Wellbeing Board 26 July 2018"), which belong to the new report.
    """
    e = els[i]
    if e.kind != "table" or not e.text.lower().startswith("title\t") or i + 1 >= len(els):
        return None
    if els[i + 1].kind != "table" or not REPORT_BY.match(els[i + 1].text):
        return None
    begin = i
    for j in range(i - 1, max(-1, i - 4), -1):
        prev = els[j]
        if prev.kind in ("table", "boilerplate") or len(prev.text.split()) > 10:
            break
        if not (find_date(prev.text) or _MEETING_NAME.search(prev.text)):
            break
        begin = j
    return begin


def _from_to_header_start(els: tuple[Element, ...], i: int) -> int | None:
    """Where a Kent report begins, if els[i] is the "Subject:" line of its From/To/Subject header."""
    if not re.match(r"(?i)^subject:\s*\S", els[i].text) or els[i].kind == "table":
        return None
    above = {els[j].text.split(":", 1)[0].strip().lower(): j for j in range(max(0, i - 3), i)}
    if "from" in above and "to" in above:
        return min(above["from"], above["to"])
    return None


_MEETING_NAME = re.compile(r"(?i)\b(?:board|committee|cabinet|council)\b")


def _collect_agenda_item(e: Element, agenda: dict[str, str]) -> None:
    m = AGENDA_ROW.match(e.text) if e.kind == "table" else MINUTE_ITEM.match(e.text)
    if m and m.group(1) not in agenda:
        title = re.sub(r"\s*\((?:proposed timing|pages)[^)]*\)\s*", " ", m.group(2), flags=re.I).strip()
        agenda[m.group(1)] = _display_title(title)


_STOP = {"and", "the", "for", "with", "from", "update", "report", "between", "board"}


def _stems(text: str) -> set[str]:
    return {w[:5] for w in re.findall(r"[a-z]{3,}", text.lower()) if w not in _STOP}


def _last_item(parts: list[Part], cur: Part) -> int:
    items = [p.agenda_item for p in [*parts, cur] if p.agenda_item and p.agenda_item.isdigit()]
    return int(items[-1]) if items else 0


def _match_agenda(title: str, agenda: dict[str, str], after: int) -> str | None:
    """The agenda item a report belongs to: by title words, else the next item in order."""
    want = _stems(title)
    best, best_score = None, 0.0
    for item, text in agenda.items():
        have = _stems(text)
        if want and have:
            score = len(want & have) / len(want)
            if score > best_score:
                best, best_score = item, score
    if best_score >= 0.6:
        return best
    # Reports follow the agenda's order, so the next numbered item is the likeliest.
    following = sorted(int(k) for k in agenda if k.isdigit() and int(k) > after)
    return str(following[0]) if following else None


def _enclosures(listing: str) -> dict[str, str]:
    """"Appendix 1: Self Evaluation Framework Appendix 2: ..." -> {"1": "Self Evaluation Framework", ...}."""
    marks = list(ENCLOSURE.finditer(listing))
    return {m.group(1).upper(): listing[m.end():(marks[k + 1].start() if k + 1 < len(marks) else None)].strip(" .;,")
            for k, m in enumerate(marks)}


def _paper_heading(els: tuple[Element, ...], i: int) -> str:
    """A paper's title among the title lines it opens with (a logo's "Barnet", then the title)."""
    lines = []
    for e in els[i:i + 3]:
        if e.kind not in ("title", "heading") or len(e.text.split()) > 14:
            break
        lines.append(e.text)
    return max(lines, key=lambda t: len(_stems(t)))  # the first of the wordiest


def _covers(heading: str, title: str) -> float:
    """How much of a listed title a heading repeats."""
    listed = _stems(title)
    return len(_stems(heading) & listed) / len(listed) if listed else 0.0


def _next_item_titled(heading: str, agenda: dict[str, str], after: int) -> str | None:
    """The agenda item after `after` whose title the heading repeats (a paper with no stamp)."""
    following = sorted((int(k) for k in agenda if k.isdigit() and int(k) > after))
    if following and _covers(heading, agenda[str(following[0])]) >= 0.5:
        return str(following[0])
    return None


def _enclosure_titled(heading: str, enclosures: dict[str, str]) -> str | None:
    """The listed appendix whose title the heading repeats (at least half of its words)."""
    scored = [(_covers(heading, title), label) for label, title in enclosures.items()]
    best = max(scored, default=(0.0, None))
    return best[1] if best[0] >= 0.5 else None


def _title_near(els: tuple[Element, ...], i: int, span: int = 10) -> str | None:
    for j in range(i + 1, min(len(els), i + span)):
        m = REPORT_TITLE_ROW.match(els[j].text)
        if m:
            return _display_title(m.group(1))
    return None


def _date_near(els: tuple[Element, ...], i: int, span: int) -> date | None:
    for j in range(i, min(len(els), i + span)):
        found = find_date(els[j].text)
        if found:
            return found
    return None


def _display_title(title: str) -> str:
    title = title.strip().rstrip(":").strip()
    letters = [c for c in title if c.isalpha()]
    if letters and sum(c.isupper() for c in letters) / len(letters) > 0.8:
        small = {"and", "of", "the", "to", "for", "in", "on", "a", "an", "by", "with"}
        words = title.lower().split()
        title = " ".join(
            w if (k and w in small) else (w.upper() if w in {"send", "jsna", "nhs", "ccg", "ccgs", "pna", "mash"} else w.capitalize())
            for k, w in enumerate(words)
        )
    return title


# ---------------------------------------------------------------- blocks


def _is_heading(e: Element) -> bool:
    if AGENDA_STAMP.search(e.text) or e.kind == "table":
        return False
    if e.kind == "heading":
        return True
    if e.kind in ("title", "text") and len(e.text.split()) <= 14 and not e.text.endswith((".", ",", ";")):
        if e.emphasis:
            return True
        if _all_caps(e.text) and _reads_as_words(e.text):
            return True
        if re.match(r"^\d{1,2}(?:\.\d{1,2})?\.?\s+[A-Z]", e.text) and e.kind == "title":
            return True
    return False


_SECTION_NUMBER = re.compile(r"^\d{1,2}(?:\.\d{1,2})*\.?\s+")


def _reads_as_words(text: str) -> bool:
    """An all-capitals line that reads as words, not the codes of a table cell.

    Table cells in PDFs come out as separate all-capital lines ("SO1, SO2", "DPH/DDPH",
    "CYP PH"); taken as headings they would replace the real heading path of every row
    below. A word of five letters, or two of three with no digits or slashes, reads as a
    heading; a section number in front does not count.
    """
    body = _SECTION_NUMBER.sub("", text)
    words = re.findall(r"[A-Za-z]+", body)
    if any(len(w) >= 5 for w in words):
        return True
    return sum(len(w) >= 3 for w in words) >= 2 and not re.search(r"[\d/]", body)


def _blocks_in_part(els: tuple[Element, ...], part: Part, p_index: int, meta: DocumentMeta) -> list[Block]:
    base = _base_path(part, meta)
    blocks: list[Block] = []
    heads: list[tuple[int, str]] = []  # (level, text) stack below the part
    minute_item: str | None = None
    run_start: int | None = None
    run_kind = "text"

    def path() -> tuple[str, ...]:
        return base + ((minute_item,) if minute_item else ()) + tuple(h for _, h in heads)

    def close(at: int) -> None:
        nonlocal run_start
        if run_start is not None and at > run_start:
            blocks.append(Block(run_kind, run_start, at, p_index, path(), minute_item))
        run_start = None

    i = part.first
    while i < part.last:
        e = els[i]
        if e.kind == "boilerplate":
            close(i)
            i += 1
            continue
        m = MINUTE_ITEM.match(e.text) if part.kind == "minutes" else None
        if m and (e.kind != "table") and not NUMBERED_PART.match(e.text[len(m.group(1)) + 2:] or "x"):
            close(i)
            minute_item = f"{m.group(1)}. {_display_title(m.group(2))}"
            heads = []
            i += 1
            continue
        if part.kind == "minutes" and e.kind != "table" and RESOLUTION_START.search(e.text):
            close(i)
            end = _resolution_end(els, i, part.last)
            blocks.append(Block("resolution", i, end, p_index, path(), minute_item))
            i = end
            continue
        if part.kind in ("report", "agenda", "document") and RECOMMENDATIONS_HEAD.match(e.text) and e.kind != "table":
            close(i)
            end = _recommendations_end(els, i, part.last)
            if end > i + 1:
                blocks.append(Block("recommendation", i, end, p_index, path(), minute_item))
                i = end
                continue
        if _is_heading(e):
            close(i)
            level = e.level or (3 if re.match(r"^\d+\.\d+", e.text) else 2)
            while heads and heads[-1][0] >= level:
                heads.pop()
            head = _display_title(e.text)[:120]
            if heads or head.lower() != base[-1].lower():  # no "AGENDA" heading under "Agenda"
                heads.append((level, head))
            heads[:] = heads[-2:]
            run_start, run_kind = i, "text"  # the heading opens the run it names
            i += 1
            continue
        kind = "table" if e.kind == "table" else "text"
        if run_start is not None and kind != run_kind:
            # a heading followed directly by a table stays with it
            if not (run_kind == "text" and i - run_start == 1 and _is_heading(els[run_start])):
                close(i)
        if run_start is None:
            run_start, run_kind = i, kind
        elif kind == "table":
            run_kind = "table"
        i += 1
    close(part.last)
    return blocks


def item_title(part: Part, meta: DocumentMeta) -> str:
    """What a part's agenda item is called: the agenda's own title for the item when the
    publisher filed the paper under it (an EqIA is cited as part of "24/00115 - ... Delivery
    Plan", not as "EqIA"), else the part's title."""
    if meta.agenda_title and part.agenda_item and part.agenda_item == meta.agenda_item:
        return meta.agenda_title
    return part.title


def _base_path(part: Part, meta: DocumentMeta) -> tuple[str, ...]:
    # The pack's agenda (and a file that is one whole part) carries the file's own title;
    # repeating it would only add noise to every heading path and embedded prefix.
    label = "Agenda" if part.kind == "agenda" else _part_label(part)
    return (meta.title,) if label == meta.title else (meta.title, label)


def _part_label(part: Part) -> str:
    if part.kind == "report" and part.agenda_item:
        return f"Item {part.agenda_item}: {part.title}"
    return part.title


def _resolution_end(els: tuple[Element, ...], i: int, stop: int) -> int:
    """The end of a resolution block: the numbered parts or "That ..." lines after the start."""
    end = i + 1
    opener = els[i].text.rstrip()
    expects_more = opener.endswith(":") or len(opener.split()) <= 6
    j = i + 1
    while j < stop and j - i <= 20:
        t = els[j].text
        if els[j].kind in ("boilerplate",) or MINUTE_ITEM.match(t) and not t.lower().startswith("that"):
            if not NUMBERED_PART.match(t) or re.search(r"(?i)\(agenda item \d+", t) or _all_caps(t):
                break
        if NUMBERED_PART.match(t) or t.startswith("That ") or (expects_more and j == i + 1):
            end = j + 1
            j += 1
            continue
        break
    return end


def _recommendations_end(els: tuple[Element, ...], i: int, stop: int) -> int:
    end = i + 1
    j = i + 1
    head_number = re.match(r"^(\d+)\.", els[i].text)
    while j < stop and j - i <= 15:
        e = els[j]
        t = e.text
        sub = re.match(r"^(\d+)\.\d+", t)
        if sub and not (head_number and sub.group(1) == head_number.group(1)):
            break  # "1.1 ..." after "1. That ...": the report's body has begun
        if e.kind == "boilerplate" or (e.kind == "heading" and not NUMBERED_PART.match(t)):
            break
        if _all_caps(t) or re.match(r"(?i)^\d+\.?\s+(why this report|reasons for|background|introduction|executive summary)", t):
            break
        if NUMBERED_PART.match(t) or t.startswith("That ") or ASKED_TO.search(t) or e.kind == "list_item" or re.match(r"(?i)^(the )?(health and wellbeing )?board\b", t):
            end = j + 1
            j += 1
            continue
        break
    return end


def _all_caps(t: str) -> bool:
    letters = [c for c in t if c.isalpha()]
    return len(letters) >= 4 and sum(c.isupper() for c in letters) / len(letters) > 0.85


# ---------------------------------------------------------------- front sheet


_COUNCIL = re.compile(
    r"\b((?:London Borough|Royal Borough|City|Borough) of [A-Z][a-z]+"
    # "Tower Hamlets", "Waltham Forest": a second word only where the line ends, so "London
    # Borough of Barnet Health and Wellbeing Board" still names Barnet.
    r"(?: (?:and|upon) [A-Z][a-z]+| [A-Z][a-z]+(?=\s*$))?"
    r"|(?:[A-Z][a-z]+ )+(?:County|City|Borough|District) Council"
    r"|(?i:london borough of [a-z]+|city of westminster|westminster city council))\b"
)
# A running head or a front-sheet line in capitals: "KENT COUNTY COUNCIL".
_COUNCIL_LINE = re.compile(r"(?i)(?!the\b)([a-z]+(?: [a-z]+)? (?:county|city|borough|district) council)")
# "Cabinet Member for ..." names a person's portfolio, not the meeting.
_BODY = re.compile(
    r"\b((?i:health (?:&|and) wellbeing board)|(?i:cabinet(?!\s+member))"
    r"|(?:[A-Z][a-z&]+ (?:(?:and|&) )?){1,4}Committee)\b"
)
# A line that is a body's name alone, in any case: "CABINET", "COUNTY COUNCIL", "SCRUTINY
# COMMITTEE", "Health and Wellbeing Board". A council or executive may stand alone; a
# committee, board or panel has a name in front.
_BODY_LINE = re.compile(
    r"(?i)(?:the\s+)?((?:[a-z&'’-]+\s+){0,6}(?:cabinet|council|executive)"
    r"|(?:[a-z&'’-]+\s+){1,6}(?:committee|sub-committee|board|panel|forum))"
)
_NOT_A_BODY = re.compile(r"(?i)^(?:minutes|agenda|meeting|report|decisions?|notice|members?|chairman|to|from|"
                         r"of|and|for|by|with|in|on|at)\b")
# Kent's report header: "To: Cabinet – 30 January 2025", "To: Scrutiny Committee - 15 January 2025".
_TO_LINE = re.compile(r"(?i)^to:\s*(.+?)\s*(?:[-–—,]\s*.*)?$")
# A council's e-mail or web address: "democratic.services@kent.gov.uk" (the PDF may split "kent .gov.uk").
_GOV_DOMAIN = re.compile(r"(?i)(?:@|\bwww\.)\s?([a-z][a-z-]{2,})\s?\.\s?gov\s?\.\s?uk\b")
_COUNCIL_KINDS = (  # (what the papers say, how the council is named)
    (re.compile(r"(?i)\bcounty (?:council|hall)\b"), "{} County Council"),
    (re.compile(r"(?i)\blondon borough\b"), "London Borough of {}"),
    (re.compile(r"(?i)\bcity council\b"), "{} City Council"),
    (re.compile(r"(?i)\bborough council\b"), "{} Borough Council"),
    (re.compile(r"(?i)\bdistrict council\b"), "{} District Council"),
)


def detect_front_sheet(els: tuple[Element, ...], running: tuple[str, ...] = ()) -> DocumentMeta:
    """Council, body, meeting date and a title from the first page or so of a document, and
    from its running headers and footers.

    A front sheet whose first line is "AGENDA" is an agenda (document_type "agenda").
    """
    head = [e.text for e in els[:40]]
    joined = "\n".join(head)
    council = _find_council(head, running)
    body = _find_body(head, running)
    when = find_date(joined) or find_date("\n".join(running))
    notes = []
    if council is None:
        notes.append("council not detected")
    if body is None:
        notes.append("body not detected")
    if when is None:
        notes.append("meeting date not detected")
    is_agenda = bool(head) and head[0].strip().lower() == "agenda"
    if is_agenda:
        title = agenda_title("agenda", body, when)
    else:
        # Contact lines ("Telephone: ...", "Email: ...") come early on front sheets.
        named = [t for t in head if not CONTACT_LINE.search(t)]
        title = next((t for t in named if 3 <= len(t.split()) <= 16), head[0] if head else "Untitled")
    return DocumentMeta(title=title[:160], council=council, body=body, meeting_date=when,
                        document_type="agenda" if is_agenda else "document", source="detected", notes=tuple(notes))


def _find_council(head: list[str], running: tuple[str, ...]) -> str | None:
    """The council a paper names: on its first page, else in its running heads, else from the
    council's e-mail or web address when the paper also names the place and the kind of council."""
    for line in [*head, *running]:
        m = _COUNCIL.search(line.strip()) or _COUNCIL_LINE.fullmatch(line.strip())
        if m:
            return _display_title(m.group(1).strip())
    joined = "\n".join([*head, *running])
    for name, canonical in (("barnet", "London Borough of Barnet"), ("westminster", "City of Westminster")):
        if re.search(rf"(?i)\b{name}\b", joined):
            return canonical
    for m in _GOV_DOMAIN.finditer(joined):
        # "eastsussex.gov.uk" is "East Sussex": the place is taken as the papers write it, and
        # not guessed from the address alone ("kent.gov.uk" with no "Kent" in the text gives nothing).
        label = m.group(1).lower()
        place = next((w for w in re.findall(r"\b[A-Z][a-z]+(?: [A-Z][a-z]+){0,2}\b", joined)
                      if w.replace(" ", "").lower() == label), None)
        kind = next((form for said, form in _COUNCIL_KINDS if said.search(joined)), None)
        if place and kind:
            return kind.format(place)
    return None


def _find_body(head: list[str], running: tuple[str, ...] = ()) -> str | None:
    # A line that is the body's name alone ("CABINET") is the surest sign, then a report's
    # "To: Cabinet – date" header; otherwise the first mention, on the page, then in the
    # running heads.
    for line in head:
        if (body := _body_line(line)) is not None:
            return body
    for line in head:
        m = _TO_LINE.match(line.strip())
        if m and (body := _body_line(m.group(1))) is not None:
            return body
    for lines in (head, running):
        m = _BODY.search("\n".join(lines))
        if m:
            return display_body(m.group(1))
    for line in running:
        for part in re.split(r"\s+[|–—-]\s+", line):
            if (body := _body_line(part)) is not None:
                return body
    return None


def _body_line(line: str) -> str | None:
    """The body a line names when the line is that name alone, and not a council's name."""
    line = line.strip()
    m = _BODY_LINE.fullmatch(line)
    if not m or _NOT_A_BODY.match(m.group(1)) or _COUNCIL.search(line) or _COUNCIL_LINE.fullmatch(line):
        return None
    return display_body(m.group(1))


def display_body(name: str) -> str:
    """A body's name as the index shows it: "CABINET" or "cabinet" -> "Cabinet", "and" -> "&"."""
    name = name.strip()
    if not any(c.isupper() for c in name):
        name = name.upper()  # a file-name slug: let _display_title give it capitals
    return _display_title(name).replace(" And ", " & ").replace(" and ", " & ")


def agenda_title(document_type: str, body: str | None, when: date | None) -> str:
    """ "Agenda – Cabinet – 30 January 2025": a title for a front sheet that says only "AGENDA"."""
    label = "Agenda pack" if document_type == "agenda_pack" else "Agenda"
    return " – ".join([label, *([body] if body else []), *([format_date(when)] if when else [])])
