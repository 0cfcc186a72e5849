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
        raw_elements = _partition(source.path, suffix, pdf_strategy)
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
    )


def _check_text(raw: bytes) -> None:
    sample = raw[:65536]
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


def _partition(path: Path, suffix: str, pdf_strategy: str) -> list[tuple[str, str, int | None, str | None]]:
    """Run unstructured; return (category, text, page, table html) per element."""
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
    out = []
    for el in found:
        if el.category in ("Header", "Footer", "PageNumber", "PageBreak", "Image"):
            continue  # running heads and page numbers would pollute every chunk
        text = el.text or ""
        if not text.strip():
            continue
        as_html = getattr(el.metadata, "text_as_html", None) if el.category == "Table" else None
        out.append((el.category, text, getattr(el.metadata, "page_number", None), as_html))
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


def _looks_like_sentence(text: str) -> bool:
    return len(text.split()) > 12 or text.rstrip().endswith((".", ";", ","))


def _html_table_rows(table_html: str) -> list[str]:
    rows = []
    for tr in re.findall(r"(?is)<tr\b[^>]*>(.*?)</tr>", table_html):
        cells = [_tidy(_strip_inline(c)) for c in re.findall(r"(?is)<t[dh]\b[^>]*>(.*?)</t[dh]>", tr)]
        if any(cells):
            rows.append("\t".join(cells))
    return rows
