"""Parse a source file with unstructured into clean, typed elements and one extracted text.

Normalisation happens here once: markdown marks, stray HTML and link syntax are removed,
but what they told us (a heading and its level, a bold line, a table row) is kept on the
element. The extracted text is the join of element texts; citations point into it.
"""

from __future__ import annotations

import html
import logging
import re
from pathlib import Path

from indexer import offline
from indexer.records import Element, ParsedDocument, SourceFile

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (".txt", ".md", ".html", ".htm", ".pdf", ".docx")

# Between elements a blank line; between rows of one table a single newline, so a table
# still reads as a table in the extracted text.
ELEMENT_SEP = "\n\n"
ROW_SEP = "\n"

_BLOCK_TAG = re.compile(r"(?i)</?(?:p|br|li|ol|ul|div|h[1-6]|tr|table|tbody|thead)\b[^>]*>")
_ANY_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
_MD_LINK = re.compile(r"\[([^\]]*)\]\((?:[^)\s]*)\)")
_HEADING_MARK = re.compile(r"^(#{1,6})\s*")
_LIST_MARK = re.compile(r"^(?:[-•▪●◦‣∙·]|\*(?!\*))\s+")
_BOLD_ALL = re.compile(r"^\s*\*\*(.+?)\*\*\s*$", re.S)
# "**MEETING****HEALTH & WELLBEING BOARD**": where one bold run ends and the next begins, the
# source had a line or cell break; dropping the marks alone would glue the words together.
_ADJACENT_RUNS = re.compile(r"\*\*\*\*|____")
_BACKSLASH_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>~])")
_SPACES = re.compile(r"[ \u00a0\u2000-\u200b\u202f]+")
_BOILERPLATE = re.compile(r"(?i)^this page is intentionally left blank\.?$")
# "3", "Page 3", "3 of 31", "- 3 -": a page number on its own, never content.
_PAGE_NUMBER = re.compile(r"(?i)^[-–\s]*(?:page\s*)?\d{1,4}(?:\s*(?:of|/)\s*\d{1,4})?[-–\s]*$")
# A header or footer repeated on this many pages is a running one (or on every page of a
# shorter document).
RUNNING_PAGES = 3
_BARE_NUMBER = re.compile(r"^\d{1,2}\.$")
# PDF table cells (see _join_table_rows): cells of one row start within ROW_TOLERANCE points
# of the same height; a column's cells start within COLUMN_TOLERANCE points of the same left edge.
ROW_TOLERANCE = 3.0
COLUMN_TOLERANCE = 5.0
MIN_COLUMNS, MIN_ROWS = 2, 3
# Contact details and phone numbers: on front sheets, never a page's or a document's title.
CONTACT_LINE = re.compile(
    r"(?i)^(?:telephone|tel|phone|e-?mail|ask for|contact)\b|@|\b0\d{2,4}[ -]?\d{3,4}[ -]?\d{3,4}\b"
)


class ParseError(Exception):
    """A file that cannot be turned into text: the reason is said to the user, the file skipped."""


def parse(source: SourceFile, pdf_strategy: str = "fast") -> ParsedDocument:
    """Parse one file into a ParsedDocument.

    Args:
        source: the file to parse.
        pdf_strategy: unstructured's PDF strategy; "fast" needs no layout model.

    Returns:
        The document's elements and extracted text.

    Raises:
        ParseError: empty, binary, corrupt or unsupported files.
    """
    suffix = source.path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ParseError(f"unsupported file type {suffix or '(none)'}")
    raw = source.path.read_bytes()
    if not raw.strip():
        raise ParseError("empty file")
    if suffix in (".txt", ".md", ".html", ".htm"):
        _check_text(raw)
    if suffix == ".pdf" and not raw.lstrip().startswith(b"%PDF"):
        raise ParseError("not a PDF (no %PDF header)")
    if suffix == ".docx" and not raw.startswith(b"PK"):
        raise ParseError("not a .docx (not a zip container)")

    offline.configure()
    try:
        raw_elements, running = _partition(source.path, suffix, pdf_strategy)
    except ParseError:
        raise
    except Exception as e:  # unstructured raises many types for corrupt files
        raise ParseError(f"could not be parsed ({type(e).__name__}: {_first_line(e)})") from e

    elements: list[Element] = []
    text_parts: list[str] = []
    pos = 0
    prev_kind = None
    for category, text, page, as_html in raw_elements:
        for kind, clean, level, emphasis in _clean(category, text, as_html):
            sep = ROW_SEP if (kind == "table" and prev_kind == "table") else ELEMENT_SEP
            if text_parts:
                text_parts.append(sep)
                pos += len(sep)
            elements.append(Element(kind, clean, pos, pos + len(clean), page, level, emphasis))
            text_parts.append(clean)
            pos += len(clean)
            prev_kind = kind
    if not elements:
        raise ParseError("no text could be extracted")
    has_pages = any(e.page is not None for e in elements)
    return ParsedDocument(
        doc_id=source.doc_id,
        path=source.path,
        sha256=source.sha256,
        text="".join(text_parts),
        elements=tuple(elements),
        has_pages=has_pages,
        running=running,
    )


def page_count(path: Path) -> int | None:
    """How many pages a PDF has; None for other files or a PDF whose page tree cannot be read.

    Counted from the PDF itself: blank or image-only pages at the end yield no element, so
    the last element's page would undercount.
    """
    if path.suffix.lower() != ".pdf":
        return None
    from pdfminer.pdfpage import PDFPage

    try:
        with path.open("rb") as f:
            return sum(1 for _ in PDFPage.get_pages(f)) or None
    except Exception:  # pdfminer raises many types for damaged files; parsing already coped
        return None


# What a file that says it is text may really be: its own format's first bytes. A PDF's syntax
# is mostly ASCII, so it would pass the binary checks below and be indexed as gibberish.
_MISLABELLED = ((b"%PDF-", "a PDF"), (b"PK\x03\x04", "a zip container (.docx, .xlsx or an archive)"),
                (b"\xd0\xcf\x11\xe0", "an old Office file (.doc, .xls)"), (b"{\\rtf", "an RTF file"))


def _check_text(raw: bytes) -> None:
    sample = raw[:65536]
    head = sample.lstrip()[:8]
    for magic, what in _MISLABELLED:
        if head.startswith(magic):
            raise ParseError(f"mislabelled: {what} under a text file's name")
    if b"\x00" in sample:
        raise ParseError("binary content in a text file (NUL bytes)")
    try:
        decoded = sample.decode("utf-8")
    except UnicodeDecodeError:
        decoded = sample.decode("latin-1")
    controls = sum(1 for ch in decoded if ord(ch) < 32 and ch not in "\t\n\r\f")
    if controls > max(8, len(decoded) // 100):
        raise ParseError("binary content in a text file (control characters)")


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")  # as _check_text reads it


def _first_line(e: Exception) -> str:
    msg = str(e).strip().splitlines()
    return (msg[0] if msg else "")[:200]


def _partition(path: Path, suffix: str,
               pdf_strategy: str) -> tuple[list[tuple[str, str, int | None, str | None]], tuple[str, ...]]:
    """Run unstructured; return (category, text, page, table html) per element, and the distinct
    running headers and footers that were left out."""
    if suffix == ".txt":
        from unstructured.partition.text import partition_text

        # One element per line: the grouper would glue table rows into one line.
        found = partition_text(filename=str(path), paragraph_grouper=False)
    elif suffix == ".md":
        from unstructured.partition.md import partition_md

        # Rendered, "**A****B**" becomes "<strong>A</strong><strong>B</strong>" and the words
        # would be glued once the tags go; keep the runs apart before rendering.
        source = _ADJACENT_RUNS.sub(lambda m: f"{m.group(0)[:2]} {m.group(0)[2:]}", _read_text(path))
        found = partition_md(text=source)
    elif suffix in (".html", ".htm"):
        from unstructured.partition.html import partition_html

        found = partition_html(filename=str(path))
    elif suffix == ".pdf":
        from unstructured.partition.pdf import partition_pdf

        found = partition_pdf(filename=str(path), strategy=pdf_strategy, languages=["eng"])
    else:
        from unstructured.partition.docx import partition_docx

        found = partition_docx(filename=str(path))
    running = _running_texts(found) if suffix == ".pdf" else None
    out, boxes = [], []
    left_out: dict[str, str] = {}
    for el in found:
        text = el.text or ""
        if el.category in ("PageNumber", "PageBreak", "Image") or not text.strip():
            continue
        category = el.category
        if category in ("Header", "Footer"):
            if running is None or _is_running(text, running):
                # Running heads and page numbers would pollute every chunk. A .docx or HTML
                # header is one by construction; a PDF's is only a guess from its position.
                if not _PAGE_NUMBER.match(_tidy(text)):
                    left_out.setdefault(_norm_running(text), _tidy(text))
                continue
            # The fast PDF strategy calls anything near the top or bottom edge a header or
            # footer, table rows and page titles included: keep them as what they read as.
            category = "PageTitle" if category == "Header" else "NarrativeText"
        as_html = getattr(el.metadata, "text_as_html", None) if category == "Table" else None
        out.append((category, text, getattr(el.metadata, "page_number", None), as_html))
        boxes.append(_box(el))
    if suffix == ".pdf":
        out = _mark_page_titles(_join_bare_numbers(_join_table_rows(out, boxes)))
    return out, tuple(left_out.values())


def _box(el) -> tuple[float, float, float, float] | None:
    """(left, top, right, bottom) of an element on its page, when the parser placed it."""
    points = getattr(getattr(el.metadata, "coordinates", None), "points", None)
    if not points:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def _join_table_rows(raw: list[tuple], boxes: list) -> list[tuple]:
    """Put a PDF table's cells back into rows: one tab-separated element per row.

    The fast strategy finds no tables; it reads each cell as its own element, and a column
    it reaches late (a "Shared Outcome" column) ends up after the whole table, so a measure
    and its owner, deadline and outcome code were never in one passage. Cells of a row start
    at the same height; a row is taken as a table row only when it has MIN_COLUMNS cells side
    by side and at least MIN_ROWS - 1 other rows on the page start cells at MIN_COLUMNS of the
    same places, so two columns of prose, or a heading level with a page number, stay as they were.
    """
    rows: list[list[int]] = []
    for page in dict.fromkeys(r[2] for r in raw):
        cells = sorted((i for i, r in enumerate(raw) if r[2] == page and boxes[i] and r[3] is None
                        and "\t" not in r[1]), key=lambda i: boxes[i][1])
        bands: list[list[int]] = []
        for i in cells:
            if bands and boxes[i][1] - boxes[bands[-1][0]][1] <= ROW_TOLERANCE:
                bands[-1].append(i)
            else:
                bands.append([i])
        candidates = []
        for band in bands:
            band.sort(key=lambda i: boxes[i][0])
            side_by_side = all(boxes[a][2] <= boxes[b][0] + 1 for a, b in zip(band, band[1:]))
            # "5." beside an item's title is a numbered agenda line (_join_bare_numbers), not a row.
            numbered = len(band) == 2 and _BARE_NUMBER.match(raw[band[0]][1].strip())
            if len(band) >= MIN_COLUMNS and side_by_side and not numbered:
                candidates.append(band)
        for band in candidates:
            lefts = [boxes[i][0] for i in band]
            alike = sum(other is not band and sum(any(abs(boxes[j][0] - x) <= COLUMN_TOLERANCE for j in other)
                                                  for x in lefts) >= MIN_COLUMNS for other in candidates)
            if alike >= MIN_ROWS - 1:
                rows.append(band)
    if not rows:
        return raw
    joined = {min(band): band for band in rows}
    dropped = {i for band in rows for i in band}
    out = []
    for i, r in enumerate(raw):
        if i in joined:
            text = "\t".join(" ".join(raw[j][1].split()) for j in joined[i])
            out.append(("NarrativeText", text, r[2], None))
        elif i not in dropped:
            out.append(r)
    return out


def _norm_running(text: str) -> str:
    # Page numbers inside a running head differ from page to page.
    return re.sub(r"\d+", "#", _tidy(text).lower())


def _running_texts(found) -> set[str]:
    """Normalised header/footer texts repeated on enough pages to be running heads."""
    pages_of: dict[str, set] = {}
    all_pages = set()
    for el in found:
        page = getattr(el.metadata, "page_number", None)
        all_pages.add(page)
        if el.category in ("Header", "Footer") and (el.text or "").strip():
            pages_of.setdefault(_norm_running(el.text), set()).add(page)
    need = max(2, min(RUNNING_PAGES, len(all_pages)))
    return {text for text, pages in pages_of.items() if len(pages) >= need}


def _is_running(text: str, running: set[str]) -> bool:
    clean = _tidy(text)
    if _BOILERPLATE.match(clean):
        return False  # kept: a blank-page notice marks where one paper of a pack ends
    return _norm_running(text) in running or bool(_PAGE_NUMBER.match(clean))


def _join_bare_numbers(raw: list[tuple]) -> list[tuple]:
    """Merge a bare "5." into the element after it on the same page.

    Agenda front sheets set the item number in its own column; read apart, "5." is noise
    and the item's title loses its number.
    """
    out = []
    i = 0
    while i < len(raw):
        category, text, page, as_html = raw[i]
        if (
            _BARE_NUMBER.match(text.strip()) and i + 1 < len(raw)
            and raw[i + 1][2] == page and raw[i + 1][3] is None and "\t" not in raw[i + 1][1]
        ):
            out.append(("ListItem", f"{text.strip()} {raw[i + 1][1].strip()}", page, None))
            i += 2
            continue
        out.append(raw[i])
        i += 1
    return out


def _mark_page_titles(raw: list[tuple]) -> list[tuple]:
    """A short Title opening a page is that page's title (slide-like PDFs have no other headings)."""
    out = []
    prev_page = None
    for category, text, page, as_html in raw:
        clean = _tidy(text)
        if (
            category == "Title" and page is not None and page != prev_page
            and 2 <= len(clean.split()) <= 14 and not _looks_like_sentence(clean)
            and not CONTACT_LINE.search(clean) and any(c.islower() for c in clean)
        ):
            # All-capital lines are left to the structure stage, which tells a heading from
            # a code in a table cell ("SO1, SO2").
            category = "PageTitle"
        out.append((category, text, page, as_html))
        prev_page = page
    return out


def _clean(category: str, text: str, as_html: str | None):
    """Yield (kind, clean text, heading level, emphasis) for one unstructured element."""
    if as_html:
        for row in _html_table_rows(as_html):
            yield "table", row, None, False
        return
    if "\t" in text:
        # A tab-separated line is a table row; HTML inside a cell is flattened, not split,
        # so the row keeps its columns.
        row = _strip_inline(_BLOCK_TAG.sub(" ", text))
        cells = [_tidy(c) for c in row.split("\t")]
        while cells and not cells[-1]:
            cells.pop()
        if any(cells):
            yield "table", "\t".join(cells), None, False
        return
    pieces = _BLOCK_TAG.split(text) if _BLOCK_TAG.search(text) else [text]
    for piece in pieces:
        level = None
        m = _HEADING_MARK.match(piece.strip())
        body = piece.strip()
        if m:
            level = len(m.group(1))
            body = body[m.end():]
        body = _LIST_MARK.sub("", body)
        emphasis = bool(_BOLD_ALL.match(_ANY_TAG.sub("", body))) or bool(
            re.match(r"(?is)^\s*<b>.*</b>\s*$", body)
        )
        clean = _tidy(_strip_inline(body))
        if not clean or clean in {"\\", "*"}:
            continue
        if _BOILERPLATE.match(clean):
            kind = "boilerplate"
        elif level is not None:
            kind = "heading"
        elif category == "PageTitle" and not _reads_as_row(clean):
            kind, level = "heading", 1  # a page's own title opens the page's section
        elif category == "ListItem":
            kind = "list_item"
        elif category == "Title" and not _looks_like_sentence(clean):
            kind = "title"  # a weak signal; the structure stage decides what is a heading
        else:
            kind = "text"
        yield kind, clean, level, emphasis


def _strip_inline(text: str) -> str:
    text = _MD_LINK.sub(r"\1", text)
    text = _ANY_TAG.sub("", text)
    text = html.unescape(text)
    text = _ADJACENT_RUNS.sub(" ", text)
    text = text.replace("**", "").replace("__", "")
    text = _BACKSLASH_ESCAPE.sub(r"\1", text)
    # Single asterisks mark italics or "member present" in these conversions; none is content.
    text = text.replace("*", "")
    return text


def _tidy(text: str) -> str:
    return _SPACES.sub(" ", text.replace("\r", " ").replace("\n", " ")).strip()


def _reads_as_row(text: str) -> bool:
    # A page header glued to its table's column heads runs to 15-20 words; a longer one, or
    # one ending like a sentence, is a table row that happens to sit at the top edge.
    return len(text.split()) > 20 or text.rstrip().endswith((".", ";", ","))


def _looks_like_sentence(text: str) -> bool:
    return len(text.split()) > 12 or text.rstrip().endswith((".", ";", ","))


def _html_table_rows(table_html: str) -> list[str]:
    rows = []
    for tr in re.findall(r"(?is)<tr\b[^>]*>(.*?)</tr>", table_html):
        cells = [_tidy(_strip_inline(c)) for c in re.findall(r"(?is)<t[dh]\b[^>]*>(.*?)</t[dh]>", tr)]
        if any(cells):
            rows.append("\t".join(cells))
    return rows
