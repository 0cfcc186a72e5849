"""PDF parsing and front-sheet detection on papers shaped like Kent County Council's.

Found running the real Kent Cabinet PDFs through the indexer: table rows near a page's edge
were dropped as headers/footers, table codes ("SO1, SO2") became headings, council and body
went missing, titles were contact lines, agendas were not agendas and Kent's minutes and
recommendations were not read. Every input here is built inside the test.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from indexer import pipeline, store
from indexer.decisions import extract_decisions
from indexer.parse import page_count, parse
from indexer.records import DocumentMeta, Element, ParsedDocument, SourceFile
from indexer.structure import detect_front_sheet, structure

# ---------------------------------------------------------------- builders


def _pdf_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _placed_pdf(path: Path, pages: list[list[tuple]]) -> Path:
    """A minimal PDF with each line at a given height (points from the bottom of a 792pt page),
    as (y, text), or at a given place, as (x, y, text).

    conftest.make_pdf sets every line from the top margin down; this one can put a line in
    the top or bottom 7% of the page, where unstructured's fast strategy calls it a header
    or footer. A page with no lines is a blank page.
    """
    font = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    objects: dict[int, bytes] = {1: b"<< /Type /Catalog /Pages 2 0 R >>", 3: font}
    page_ids = []
    next_id = 4
    for lines in pages:
        page_id, content_id = next_id, next_id + 1
        next_id += 2
        page_ids.append(page_id)
        placed = [(72, *line) if len(line) == 2 else line for line in lines]
        ops = ["BT", "/F1 11 Tf"] + [f"1 0 0 1 {x} {y} Tm ({_pdf_string(t)}) Tj" for x, y, t in placed] + ["ET"]
        stream = "\n".join(ops).encode("latin-1")
        objects[content_id] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"
        objects[page_id] = (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {content_id} 0 R >>").encode()
    kids = " ".join(f"{p} 0 R" for p in page_ids)
    objects[2] = f"<< /Type /Pages /Kids [{kids}] /Count {len(page_ids)} >>".encode()
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for obj_id in range(1, next_id):
        offsets[obj_id] = len(out)
        out += f"{obj_id} 0 obj\n".encode() + objects[obj_id] + b"\nendobj\n"
    xref_at = len(out)
    out += f"xref\n0 {next_id}\n".encode() + b"0000000000 65535 f \n"
    out += b"".join(f"{offsets[i]:010d} 00000 n \n".encode() for i in range(1, next_id))
    out += f"trailer\n<< /Size {next_id} /Root 1 0 R >>\nstartxref\n{xref_at}\n%%EOF\n".encode()
    path.write_bytes(bytes(out))
    return path


TOP, BOTTOM = 770, 8  # inside the top / bottom 7% of the page (55pt)


def _body(*lines: str, start: int = 700) -> list[tuple[int, str]]:
    """Lines down the middle of a page, a paragraph gap apart."""
    return [(start - 30 * k, t) for k, t in enumerate(lines)]


def _source(path: Path, meta: DocumentMeta | None = None) -> SourceFile:
    return SourceFile(path=path, doc_id=path.stem, sha256="0" * 64, meta=meta)


def _doc(rows: list[tuple[str, str]]) -> ParsedDocument:
    """A ParsedDocument from (kind, text) rows, offsets as parse would set them."""
    els, pos = [], 0
    for kind, text in rows:
        els.append(Element(kind, text, pos, pos + len(text)))
        pos += len(text) + 2
    return ParsedDocument("doc", Path("doc.txt"), "0" * 64, "\n\n".join(t for _, t in rows), tuple(els), False)


def _raw_categories(path: Path) -> dict[str, str]:
    from indexer import offline

    offline.configure()
    from unstructured.partition.pdf import partition_pdf

    found = partition_pdf(filename=str(path), strategy="fast", languages=["eng"])
    return {el.text.strip(): el.category for el in found}


# ---------------------------------------------------------------- 1. headers and footers


RUNNING = "Kent County Council Cabinet 30 January 2025"
ROW = "Increase numbers entering substance misuse treatment and reduce drug related deaths."
PAGE_TITLE = "Proposed Priorities to Improve Health and Wellbeing ~ Public Health"


@pytest.fixture
def measures_pdf(tmp_path: Path) -> Path:
    """Three pages with a running head and page numbers; page 2 has its own title at the top
    edge and a table row at the bottom edge."""
    pages = []
    for n in (1, 2, 3):
        lines = [(TOP, RUNNING), (BOTTOM, f"Page {n} of 3")]
        if n == 2:
            lines += [(TOP - 22, PAGE_TITLE), (BOTTOM + 30, ROW)]
        lines += _body(f"The programme on page {n} continues with partners across the county.")
        pages.append(lines)
    return _placed_pdf(tmp_path / "measures.pdf", pages)


def test_pdf_keeps_edge_text_that_is_not_a_running_head(measures_pdf):
    raw = _raw_categories(measures_pdf)
    # The premise: unstructured calls these a header and a footer, by position alone.
    assert raw[ROW] == "Footer"
    assert raw[PAGE_TITLE] == "Header"

    doc = parse(_source(measures_pdf))
    assert "substance misuse treatment" in doc.text
    row = next(e for e in doc.elements if "substance misuse" in e.text)
    assert row.kind == "text" and row.page == 2
    title = next(e for e in doc.elements if e.text == PAGE_TITLE)
    assert title.kind == "heading" and title.page == 2


def test_pdf_drops_running_heads_and_page_numbers(measures_pdf):
    doc = parse(_source(measures_pdf))
    assert RUNNING not in doc.text
    assert "Page 2 of 3" not in doc.text and "of 3" not in doc.text
    assert doc.text.count("continues with partners") == 3


def test_page_title_heads_the_rows_below_it(measures_pdf):
    doc = parse(_source(measures_pdf))
    st = structure(doc, DocumentMeta(title="Measures"))
    row_index = next(i for i, e in enumerate(doc.elements) if "substance misuse" in e.text)
    block = next(b for b in st.blocks if b.first <= row_index < b.last)
    assert block.heading_path[-1] == PAGE_TITLE


def test_header_on_both_pages_of_a_two_page_pdf_is_running(tmp_path):
    path = _placed_pdf(tmp_path / "two.pdf", [
        [(TOP, "EQIA Submission Form"), *_body("Section A sets out the activity.")],
        [(TOP, "EQIA Submission Form"), *_body("Section B sets out the evidence.")],
    ])
    doc = parse(_source(path))
    assert "EQIA Submission Form" not in doc.text
    assert "Section B sets out the evidence." in doc.text


def test_short_first_title_on_a_page_is_a_heading(tmp_path):
    path = _placed_pdf(tmp_path / "logframe.pdf", [
        _body("Shared Delivery Plan Shared Outcomes", "The plan is shared by every partner in the system."),
        _body("Measures within the Logframe", "Lead for Family Hubs", "Agreed metrics on core plus are in place."),
    ])
    doc = parse(_source(path))
    first = next(e for e in doc.elements if e.text == "Measures within the Logframe")
    cell = next(e for e in doc.elements if e.text == "Lead for Family Hubs")
    assert first.kind == "heading" and cell.kind != "heading"  # only the page's first title
    st = structure(doc, DocumentMeta(title="Logframe"))
    metrics = next(i for i, e in enumerate(doc.elements) if e.text.startswith("Agreed metrics"))
    block = next(b for b in st.blocks if b.first <= metrics < b.last)
    assert block.heading_path[-1] == "Measures within the Logframe"


# ---------------------------------------------------------------- 7. page count


def test_page_count_comes_from_the_pdf(tmp_path, settings_for, fake_encoder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    pdf = _placed_pdf(corpus / "briefing.pdf", [
        _body("Screening Programmes", "The Board noted the report on cancer screening programmes."),
        _body("Healthy Weight", "The Board discussed the whole system approach to healthy weight."),
        [],  # a blank last page yields no element at all
    ])
    assert page_count(pdf) == 3
    assert page_count(tmp_path / "notes.txt") is None
    settings = settings_for(tmp_path)
    pipeline.build(settings, encoder=fake_encoder)
    assert store.load_index(settings.index_dir).documents["briefing"].pages == 3


# ---------------------------------------------------------------- 2. headings


def _heading_of(rows, text) -> tuple[str, ...]:
    doc = _doc(rows)
    st = structure(doc, DocumentMeta(title="Plan"))
    index = next(i for i, e in enumerate(doc.elements) if e.text == text)
    return next(b for b in st.blocks if b.first <= index < b.last).heading_path


@pytest.mark.parametrize("cell", ["SO1, SO2", "SO2,SO3,SO4", "DPH/DDPH", "CYP PH", "DDPH", "Y Y Y Y"])
def test_table_codes_are_not_headings(cell):
    rows = [("title", "PUBLIC HEALTH"), ("text", "Increase numbers entering treatment"),
            ("title", cell), ("text", "Drug death rates fall year on year")]
    assert _heading_of(rows, "Drug death rates fall year on year")[-1] == "Public Health"


@pytest.mark.parametrize("heading, shown", [
    ("EXEMPT ITEMS", "Exempt Items"),
    ("APPENDIX 1", "Appendix 1"),
    ("1. WHY THIS REPORT IS NEEDED", "1. Why This Report Is Needed"),
    ("FIRE/EMERGENCY EVACUATION PROCEDURE", "Fire/emergency Evacuation Procedure"),
    ("PART 1 (IN PUBLIC)", "Part 1 (in Public)"),
])
def test_capital_headings_still_head(heading, shown):
    rows = [("title", "PUBLIC HEALTH"), ("title", heading), ("text", "The text below the heading")]
    assert _heading_of(rows, "The text below the heading")[-1] == shown


# ---------------------------------------------------------------- 3-5. detection


def test_front_sheet_body_is_found_in_capitals_and_not_in_a_portfolio():
    els = _doc([("title", "AGENDA"), ("title", "CABINET"), ("text", "Thursday, 30th January, 2025, at 10.00 am"),
                ("text", "Ask for:"), ("text", "Telephone: Tel: 03000 414043")]).elements
    found = detect_front_sheet(els)
    assert found.body == "Cabinet"
    assert found.document_type == "agenda"
    assert found.title == "Agenda – Cabinet – 30 January 2025"

    portfolio = _doc([("text", "From: Dan Watkins, Cabinet Member for Adult Social Care"),
                      ("text", "Report to the Health and Wellbeing Board")]).elements
    assert detect_front_sheet(portfolio).body == "Health & Wellbeing Board"


def test_front_sheet_title_skips_contact_lines():
    els = _doc([("text", "Ask for: Georgina Little"), ("text", "Telephone: Tel: 03000 414043"),
                ("text", "Email: georgina.little@kent.gov.uk"),
                ("title", "Commissioning Plan for Education Provision in Kent")]).elements
    assert detect_front_sheet(els).title == "Commissioning Plan for Education Provision in Kent"


AGENDA_30 = """\
AGENDA

CABINET

Thursday, 30th January, 2025, at 10.00 am

Ask for: Georgina Little

Telephone: Tel: 03000 414043

Kent County Council

1. Apologies

2. 24/00115 - Kent County Council Integrated Care Strategy (KCC ICS) Delivery Plan
"""

EQIA = """\
EQIA Submission – ID Number Section A

KCC adoption of ICS delivery Plan

The aim of the strategy is to improve the health and wellbeing of the people of the county.
"""

PACK_13 = """\
AGENDA

CABINET

Thursday, 13th March, 2025, at 3.00 pm

Telephone: Tel: 03000 414043

1. Apologies

2. Consideration of Decision 24/00093 (if required)
"""


@pytest.fixture
def kent_corpus(tmp_path: Path) -> Path:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "cabinet__2025-01-30__Agenda frontsheet 30th-Jan-2025 10.00 Cabinet.txt").write_text(AGENDA_30)
    (corpus / "cabinet__2025-01-30__24-00115 - EqIA.txt").write_text(EQIA)
    (corpus / "cabinet__2025-03-13__pack__Public reports pack 13th-Mar-2025 15.00 Cabinet.txt").write_text(PACK_13)
    return corpus


def _records(settings, encoder) -> dict[str, object]:
    """Build, then the document records by the last part of their file names."""
    pipeline.build(settings, encoder=encoder)
    return {Path(rec.path).name.split("__")[-1]: rec for rec in store.load_index(settings.index_dir).documents.values()}


def test_kent_papers_get_council_body_date_type_and_title(kent_corpus, settings_for, fake_encoder):
    recs = _records(settings_for(kent_corpus.parent), fake_encoder)

    agenda = recs["Agenda frontsheet 30th-Jan-2025 10.00 Cabinet.txt"]
    assert (agenda.title, agenda.council, agenda.body, agenda.meeting_date, agenda.document_type) == (
        "Agenda – Cabinet – 30 January 2025", "Kent County Council", "Cabinet", date(2025, 1, 30), "agenda")

    eqia = recs["24-00115 - EqIA.txt"]
    assert (eqia.title, eqia.council, eqia.body, eqia.meeting_date, eqia.document_type) == (
        "24-00115 - EqIA", "Kent County Council", "Cabinet", date(2025, 1, 30), "document")
    assert "council taken from the other papers of the Cabinet meeting of 30 January 2025" in eqia.notes
    assert "body taken from the file name" in eqia.notes
    assert "council not detected" not in eqia.notes

    pack = recs["Public reports pack 13th-Mar-2025 15.00 Cabinet.txt"]
    assert (pack.title, pack.council, pack.body, pack.meeting_date, pack.document_type) == (
        "Agenda pack – Cabinet – 13 March 2025", "Kent County Council", "Cabinet", date(2025, 3, 13), "agenda_pack")
    assert "council taken from the other Cabinet papers in the corpus" in pack.notes


def test_council_is_not_borrowed_from_another_body(tmp_path, settings_for, fake_encoder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "cabinet__2025-01-30__24-00115 - EqIA.txt").write_text(EQIA)
    (corpus / "hwb-notes.txt").write_text("London Borough of Barnet\n\nHealth and Wellbeing Board notes\n")
    (corpus / "notes.txt").write_text("Notes of the workshop on healthy weight in schools\n")
    recs = _records(settings_for(tmp_path), fake_encoder)
    # A Cabinet paper in a corpus whose only council is a Health and Wellbeing Board's.
    assert recs["24-00115 - EqIA.txt"].council is None
    assert "council not detected" in recs["24-00115 - EqIA.txt"].notes
    # A paper that names no body either takes the corpus's only council, and says so.
    assert recs["notes.txt"].council == "London Borough of Barnet"
    assert "council taken from the only council named in the corpus" in recs["notes.txt"].notes


def test_reused_paper_gets_the_council_a_new_paper_brings(kent_corpus, settings_for, fake_encoder):
    agenda = next(kent_corpus.glob("*Agenda frontsheet*"))
    text = agenda.read_text()
    agenda.unlink()
    (kent_corpus / "hwb-notes.txt").write_text("London Borough of Barnet\n\nHealth and Wellbeing Board notes\n")
    settings = settings_for(kent_corpus.parent)
    assert _records(settings, fake_encoder)["24-00115 - EqIA.txt"].council is None
    agenda.write_text(text)  # the meeting's agenda arrives in a later build
    assert _records(settings, fake_encoder)["24-00115 - EqIA.txt"].council == "Kent County Council"


def test_reused_paper_loses_a_council_whose_source_is_gone(kent_corpus, settings_for, fake_encoder):
    settings = settings_for(kent_corpus.parent)
    assert _records(settings, fake_encoder)["24-00115 - EqIA.txt"].council == "Kent County Council"
    for paper in [*kent_corpus.glob("*Agenda frontsheet*"), *kent_corpus.glob("*pack*")]:
        paper.unlink()  # the papers that named Kent leave the corpus; the EqIA itself is unchanged
    (kent_corpus / "hwb-notes.txt").write_text("London Borough of Barnet\n\nHealth and Wellbeing Board notes\n")
    eqia = _records(settings, fake_encoder)["24-00115 - EqIA.txt"]
    assert eqia.council is None and "council not detected" in eqia.notes
    index = store.load_index(settings.index_dir)
    assert all(c.council is None for c in index.chunks if c.doc_id == eqia.id)


def test_pdf_agenda_numbers_join_their_items(tmp_path):
    path = _placed_pdf(tmp_path / "cabinet__2025-01-30__Agenda frontsheet.pdf", [_body(
        "AGENDA", "CABINET", "Thursday, 30th January, 2025, at 10.00 am",
        "1. Apologies", "5.", "24/00108 - Revenue and Capital Budget Monitoring Report (Pages 11 - 84)",
    )])
    doc = parse(_source(path))
    texts = [e.text for e in doc.elements]
    assert "5." not in texts
    assert "5. 24/00108 - Revenue and Capital Budget Monitoring Report (Pages 11 - 84)" in texts
    meta, _ = pipeline._resolve_meta(_source(path), doc)
    assert meta.document_type == "agenda" and meta.title == "Agenda – Cabinet – 30 January 2025"


def test_pdf_table_cells_are_put_back_into_rows(tmp_path):
    """A measures table read cell by cell: each row becomes one tab-separated table row, even
    for a column the PDF sets after the whole table; prose beside it stays prose."""
    rows = [("Commitment", "Led by", "Timescale", "Outcome"),
            ("Optimise family hubs", "Lead for Family Hubs", "Mar 2026", "SO1"),
            ("Deliver the Daily Mile in schools", "Active Kent", "Mar 2026", "SO1, SO3"),
            ("Support parents with anxiety", "Family hubs", "Mar 2027", "SO2")]
    xs, top = (40, 250, 400, 500), 700
    first_columns = [(x, top - 40 * r, row[c]) for r, row in enumerate(rows) for c, x in enumerate(xs[:3])]
    last_column = [(xs[3], top - 40 * r, row[3]) for r, row in enumerate(rows)]  # set after the table
    prose = [(40, 500, "The programme is reviewed every year."), (300, 500, "Partners report each quarter.")]
    path = _placed_pdf(tmp_path / "measures.pdf", [first_columns + last_column + prose])
    doc = parse(_source(path))
    table = [e.text for e in doc.elements if e.kind == "table"]
    assert table == ["\t".join(row) for row in rows]
    assert {e.text for e in doc.elements if e.kind != "table"} == {t for _, _, t in prose}


# ---------------------------------------------------------------- 6. Kent minutes and reports


KENT_PACK = """\
MINUTES of a meeting of the Cabinet held in the Council Chamber, Sessions House, County Hall, \
Maidstone on Thursday, 9 January 2025.

PRESENT: Mr R Gough (Chairman), Mr P Oakford

1. Apologies

2. Declarations of Interest

5. 24/00115 - Kent County Council Integrated Care Strategy (KCC ICS) Delivery Plan

Dr Gogarty introduced the report.

RESOLVED that the KCC ICS Delivery Plan be agreed.

From: Dan Watkins, Cabinet Member for Adult Social Care and Public Health

To: Cabinet – 30 January 2025

Subject: 24/00115 - Kent County Council Integrated Care Strategy (KCC ICS) Delivery Plan

Decision no: 24/00115

Recommendation(s):

Cabinet is asked to APPROVE the KCC ICS Delivery Plan.

1. Introduction

1.1 The Integrated Care Strategy was agreed in 2023.
"""


def test_kent_minutes_and_report_yield_a_decision_and_a_recommendation(tmp_path):
    path = tmp_path / "kent-pack.txt"
    path.write_text(KENT_PACK)
    meta = DocumentMeta(title="Cabinet pack", council="Kent County Council", body="Cabinet",
                        meeting_date=date(2025, 1, 30), document_type="agenda_pack")
    doc = parse(_source(path, meta))
    st = structure(doc, meta)
    assert [p.kind for p in st.parts] == ["minutes", "report"]
    assert st.parts[0].meeting_date == date(2025, 1, 9)
    assert st.parts[1].title == "24/00115 - Kent County Council Integrated Care Strategy (KCC ICS) Delivery Plan"

    decisions = {d.kind: d for d in extract_decisions(doc, meta, st.parts, st.blocks)}
    assert set(decisions) == {"decision", "recommendation"}
    resolved = decisions["decision"]
    assert resolved.text == "RESOLVED that the KCC ICS Delivery Plan be agreed."
    assert resolved.item == "5. 24/00115 - Kent County Council Integrated Care Strategy (KCC ICS) Delivery Plan"
    assert resolved.meeting_date == date(2025, 1, 9)
    assert "Cabinet is asked to APPROVE the KCC ICS Delivery Plan." in decisions["recommendation"].text
    assert "Introduction" not in decisions["recommendation"].text


def test_long_kent_minutes_heading_makes_a_pack(tmp_path):
    path = tmp_path / "kent-minutes.txt"
    path.write_text(KENT_PACK)
    meta, _ = pipeline._resolve_meta(_source(path), parse(_source(path)))
    assert meta.document_type == "agenda_pack"
    assert (meta.council, meta.body) == ("Kent County Council", "Cabinet")


# ---------------------------------------------------------------- 8. county councils and London boroughs


FOOTER = "Kent County Council - Scrutiny Committee - 15 January 2025"


def test_running_footer_names_council_body_and_date(tmp_path):
    """A paper that names its council, committee and meeting only in its footer."""
    pages = [[(BOTTOM, FOOTER), *_body(f"Section {c} sets out what the service will change and why.")]
             for c in "ABC"]
    path = _placed_pdf(tmp_path / "briefing.pdf", pages)
    doc = parse(_source(path))
    assert FOOTER not in doc.text and doc.running == (FOOTER,)
    meta, notes = pipeline._resolve_meta(_source(path), doc)
    assert (meta.council, meta.body, meta.meeting_date) == ("Kent County Council", "Scrutiny Committee",
                                                            date(2025, 1, 15))
    assert notes == ["no metadata entry; detected from the front sheet"]


def test_running_head_is_read_only_after_the_first_page():
    els = _doc([("title", "AGENDA"), ("title", "CABINET"), ("text", "Thursday, 30th January, 2025")]).elements
    found = detect_front_sheet(els, running=("Scrutiny Committee - 15 January 2025",))
    assert (found.body, found.meeting_date) == ("Cabinet", date(2025, 1, 30))


@pytest.mark.parametrize("lines, body", [
    (["AGENDA", "COUNTY COUNCIL", "Thursday, 13th February, 2025, at 10.00 am"], "County Council"),
    (["AGENDA", "SCRUTINY COMMITTEE", "Wednesday, 15th January, 2025"], "Scrutiny Committee"),
    (["From: Roger Gough, Leader of the Council", "To: Scrutiny Committee - 15 January 2025",
      "Subject: Budget monitoring"], "Scrutiny Committee"),
    (["From: Roger Gough, Leader of the Council", "To: County Council – 13 February 2025"], "County Council"),
    (["KENT COUNTY COUNCIL", "Kent County Council", "Council Chamber, Sessions House"], None),
    (["London Borough of Tower Hamlets", "HEALTH AND WELLBEING BOARD", "Tuesday, 4 March 2025"],
     "Health & Wellbeing Board"),
    (["Report to the Overview and Scrutiny Committee", "London Borough of Camden"], "Overview & Scrutiny Committee"),
    (["Minutes of the Committee", "Members of the Board"], None),
])
def test_county_council_and_borough_bodies(lines, body):
    assert detect_front_sheet(_doc([("text", t) for t in lines]).elements).body == body


@pytest.mark.parametrize("lines, council", [
    (["KENT COUNTY COUNCIL", "CABINET"], "Kent County Council"),
    (["London Borough of Tower Hamlets"], "London Borough of Tower Hamlets"),
    (["London Borough of Barnet Health and Wellbeing Board"], "London Borough of Barnet"),
    (["Royal Borough of Kensington and Chelsea"], "Royal Borough of Kensington and Chelsea"),
    # From the council's address, when the paper also writes the place and the kind of council.
    (["Ask for: Georgina Little", "Email: georgina.little@kent .gov.uk", "County Hall, Maidstone",
      "Commissioning Plan for Education Provision in Kent"], "Kent County Council"),
    (["Email: democratic.services@eastsussex.gov.uk", "East Sussex schools", "County Hall, Lewes"],
     "East Sussex County Council"),
    # An address alone is no name: "kent.gov.uk" and "County Hall" without "Kent" in the text.
    (["Email: georgina.little@kent .gov.uk", "Sessions House, County Hall, Maidstone"], None),
])
def test_council_from_front_sheet_lines(lines, council):
    assert detect_front_sheet(_doc([("text", t) for t in lines]).elements).council == council


# What detection reads from the text of each Kent PDF alone (no file name, no metadata, no other
# paper to borrow from), measured on the published files. The EqIA names neither council (only
# "KCC") nor meeting; the appendix names no meeting; the reports pack names Kent only in an
# e-mail address. The build fills these from the file name and the meeting's other papers.
KENT_DETECTED = {
    "agenda": ("Kent County Council", "Cabinet", date(2025, 1, 30), "agenda"),
    "pack": (None, "Cabinet", date(2025, 3, 13), "agenda"),
    "eqia": (None, None, None, "document"),
    "appendix": ("Kent County Council", None, None, "document"),
}


@pytest.mark.parametrize("key", sorted(KENT_DETECTED))
def test_detection_on_the_real_kent_pdfs(key, kent_pdfs, kent_parsed):
    import hashlib

    doc = kent_parsed[hashlib.sha256(kent_pdfs[key].read_bytes()).hexdigest()]
    found = detect_front_sheet(doc.elements, doc.running)
    assert (found.council, found.body, found.meeting_date, found.document_type) == KENT_DETECTED[key]
    for head in doc.running:  # running heads stay out of the text they were read from
        assert head not in doc.text
