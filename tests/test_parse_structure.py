"""Parsing and structure recovery on the bundled corpus (real files, metadata from corpus/metadata.toml).

The packs are parsed once per session (conftest.parsed_corpus): unstructured needs seconds per pack.
"""

from __future__ import annotations

import random
import re
from datetime import date
from pathlib import Path

import pytest

from indexer.decisions import extract_decisions
from indexer.parse import ELEMENT_SEP, ROW_SEP, ParseError, parse
from indexer.records import DocumentMeta, SourceFile
from indexer.structure import NUMBERED_PART, structure

PACK_2018 = "barnet-hwb-2018-07-26-agenda-pack.txt"
PACK_2019 = "barnet-hwb-2019-01-17-agenda-pack.txt"
WESTMINSTER = "westminster-hwb-2015-01-22-agenda-pack.txt"
BARNET_PACKS = (PACK_2018, PACK_2019)


def _block_text(doc, block) -> str:
    return doc.text[doc.elements[block.first].start:doc.elements[block.last - 1].end]


def _parts_of_kind(st, kind):
    return [p for p in st.parts if p.kind == kind]


def _block_containing(st, index):
    found = [b for b in st.blocks if b.first <= index < b.last]
    assert len(found) == 1, f"element {index} is in {len(found)} blocks"
    return found[0]


# ---------------------------------------------------------------- minutes inside packs


def test_2018_pack_parts_and_minutes_date(parsed_corpus):
    src, doc, st = parsed_corpus(PACK_2018)
    assert src.meta is not None and src.meta.meeting_date == date(2018, 7, 26)
    assert st.parts[0].kind == "agenda"
    assert st.parts[0].meeting_date == date(2018, 7, 26)
    minutes = _parts_of_kind(st, "minutes")
    assert len(minutes) == 1
    # The minutes inside the July pack are those of the earlier meeting of 8 March 2018.
    assert minutes[0].meeting_date == date(2018, 3, 8)
    assert "8 March 2018" in minutes[0].title
    # Parts tile the element range in order, without gaps or overlaps.
    assert st.parts[0].first == 0 and st.parts[-1].last == len(doc.elements)
    for a, b in zip(st.parts, st.parts[1:]):
        assert a.last == b.first
    # Reports carry the pack's own meeting date, not the minutes' date.
    reports = _parts_of_kind(st, "report")
    assert reports and all(p.meeting_date == date(2018, 7, 26) for p in reports)


def test_2018_resolutions_belong_to_the_march_minutes(parsed_corpus):
    _, doc, st = parsed_corpus(PACK_2018)
    resolutions = [b for b in st.blocks if b.kind == "resolution"]
    assert len(resolutions) >= 6
    for b in resolutions:
        part = st.parts[b.part]
        assert part.kind == "minutes"
        assert part.meeting_date == date(2018, 3, 8)
        assert b.minute_item is not None
        assert b.minute_item in b.heading_path
        assert re.search(r"RESOLVED", _block_text(doc, b))
    items = {b.minute_item for b in resolutions}
    assert {"6. Screening Update", "8. SEND Strategy and JSNA", "12. Forward Work Programme"} <= items


SCREENING_PARTS = (
    "noted the NHSE Report on screening programmes",
    "sought assurance that a clear reporting cycle is established",
    "sought assurance that a recovery plan is in place",
    "receives an item at its July meeting setting out the recovery plan",
    "details of availability of sexual health clinics",
)


def test_screening_resolution_block_holds_all_five_parts(parsed_corpus):
    src, doc, st = parsed_corpus(PACK_2018)
    blocks = [b for b in st.blocks if b.kind == "resolution" and b.minute_item == "6. Screening Update"]
    assert len(blocks) == 1
    block = blocks[0]
    text = _block_text(doc, block)
    assert text.startswith("It was therefore RESOLVED that:")
    positions = [text.find(p) for p in SCREENING_PARTS]
    assert all(pos >= 0 for pos in positions), dict(zip(SCREENING_PARTS, positions))
    assert positions == sorted(positions)  # in their numbered order
    numbered = [e.text for e in doc.elements[block.first:block.last] if NUMBERED_PART.match(e.text)]
    assert [t.split(".", 1)[0] for t in numbered] == ["1", "2", "3", "4", "5"]
    # The next minute item's heading is not swallowed into the resolution.
    assert "UPDATE REPORT ON PROGRESS" not in text.upper()
    # The decision record made from it has five parts and the minutes' date.
    decision = next(
        d for d in extract_decisions(doc, src.meta, st.parts, st.blocks) if d.item == "6. Screening Update"
    )
    assert decision.kind == "decision"
    assert decision.parts == 5
    assert decision.meeting_date == date(2018, 3, 8)
    assert decision.text == text
    assert doc.text[decision.context_start:decision.context_end].startswith("6. SCREENING UPDATE")


def test_westminster_minutes_dated_20_november_2014(parsed_corpus):
    _, doc, st = parsed_corpus(WESTMINSTER)
    minutes = _parts_of_kind(st, "minutes")
    assert len(minutes) == 1
    assert minutes[0].meeting_date == date(2014, 11, 20)
    m_index = st.parts.index(minutes[0])
    wanted = "Contracting Intentions of Central and West London Clinical Commissioning Groups be endorsed"
    holding = [b for b in st.blocks if b.kind == "resolution" and wanted in _block_text(doc, b)]
    assert len(holding) == 1
    assert holding[0].part == m_index
    assert holding[0].minute_item == "9. Contracting Intentions"


# ---------------------------------------------------------------- reports


@pytest.mark.parametrize(
    "name, title, item",
    [
        (WESTMINSTER, "Better Care Fund Update", "4"),
        (WESTMINSTER, "Care Act Implementation", "5"),
        (WESTMINSTER, "Work Programme", "10"),
        (PACK_2018, "A Whole System Approach to Healthy Weight", "7"),
        (PACK_2018, "Joint Health and Wellbeing Strategy Review and Next Steps", "6"),
        (PACK_2019, "Family Friendly Barnet", "11"),
    ],
)
def test_reports_get_agenda_item_numbers(parsed_corpus, name, title, item):
    _, _, st = parsed_corpus(name)
    reports = [p for p in st.parts if p.kind == "report" and p.title == title]
    assert len(reports) == 1, [p.title for p in st.parts]
    assert reports[0].agenda_item == item


def test_2018_pna_report_is_its_own_item_10(parsed_corpus):
    """The PNA report has the 'Title\\t...' header table but no 'AGENDA ITEM 10' stamp."""
    _, doc, st = parsed_corpus(PACK_2018)
    row = next(i for i, e in enumerate(doc.elements) if e.text == "Title\tPharmaceutical Needs Assessment (PNA)")
    part = next(p for p in st.parts if p.first <= row < p.last)
    assert part.kind == "report"
    assert part.agenda_item == "10"
    assert part.title == "Pharmaceutical Needs Assessment (PNA)"
    # The report begins at the board-and-date line above its header table, not inside item 9.
    assert doc.elements[part.first].text == "Health and Wellbeing Board 26 July 2018"
    item_9 = st.parts[st.parts.index(part) - 1]
    assert item_9.agenda_item == "9" and item_9.last == part.first
    recs = [b for b in st.blocks if b.kind == "recommendation" and st.parts[b.part] is part]
    assert len(recs) == 1
    assert "final PNA document was published in May 2018" in _block_text(doc, recs[0])
    assert recs[0].heading_path[1] == "Item 10: Pharmaceutical Needs Assessment (PNA)"
    assert not [b for b in st.blocks if b.kind == "recommendation" and st.parts[b.part] is item_9
                and "PNA" in _block_text(doc, b)]


@pytest.mark.parametrize(
    "name, items",
    [
        (PACK_2018, ["6", "7", "9", "10", "11"]),
        # Item 6, the work programme, has no stamp: its heading after a blank page starts it.
        (PACK_2019, ["5", "6", "7", "8", "9", "10", "11"]),
        (WESTMINSTER, ["4", "5", "6", "7", "8", "9", "10"]),
    ],
)
def test_each_report_is_one_part(parsed_corpus, name, items):
    _, _, st = parsed_corpus(name)
    assert [p.agenda_item for p in st.parts if p.kind == "report"] == items


SHORT_MINUTES_PACK = """\
HEALTH & WELLBEING BOARD

## ORDER OF BUSINESS

Item No\tTitle of Report\tPages
1.\tMinutes of the Previous Meeting\t3 - 4
5.\tAir quality near schools\t5 - 9

This page is intentionally left blank

# Decisions of the Health & Wellbeing Board

8 March 2018

The meeting finished at 11.40 am

AGENDA ITEM 5

Health and Wellbeing Board 26 July 2018

Title\tAir quality near schools
Report of\tDirector of Public Health

**Recommendations**

1. That the Board notes the air quality monitoring results near schools.

## 1. WHY THIS REPORT IS NEEDED

Nitrogen dioxide levels fell at most monitoring sites near schools during the year.
"""


def _structure_of(tmp_path, text: str):
    path = tmp_path / "pack.txt"
    path.write_text(text, encoding="utf-8")
    meta = DocumentMeta(title="Board pack, 26 July 2018", body="Health & Wellbeing Board",
                        meeting_date=date(2018, 7, 26), document_type="agenda_pack")
    doc = parse(SourceFile(path=path, doc_id="pack", sha256="0" * 64, meta=meta))
    return doc, structure(doc, meta)


def test_short_minutes_do_not_take_the_next_reports_stamp(tmp_path):
    """Minutes with no stamp of their own, followed within a few lines by a report's stamp."""
    doc, st = _structure_of(tmp_path, SHORT_MINUTES_PACK)
    assert [(p.kind, p.agenda_item) for p in st.parts] == [("agenda", None), ("minutes", None), ("report", "5")]
    minutes, report = st.parts[1], st.parts[2]
    assert minutes.meeting_date == date(2018, 3, 8)
    assert doc.elements[report.first].text == "AGENDA ITEM 5"
    assert report.title == "Air quality near schools"
    rec = next(b for b in st.blocks if b.kind == "recommendation")
    assert st.parts[rec.part] is report


def test_minutes_keep_their_own_stamp(tmp_path):
    text = SHORT_MINUTES_PACK.replace("8 March 2018\n", "8 March 2018\n\nAGENDA ITEM 1\n\nChairman: Cllr Helena Hart\n")
    _, st = _structure_of(tmp_path, text)
    assert [(p.kind, p.agenda_item) for p in st.parts] == [("agenda", None), ("minutes", "1"), ("report", "5")]


UNSTAMPED_PAPERS_PACK = """\
HEALTH & WELLBEING BOARD

## ORDER OF BUSINESS

Item No\tTitle of Report\tPages
5.\tAir quality near schools\t5 - 9
6.\tForward Work Programme\t10 - 12

This page is intentionally left blank

AGENDA ITEM 5

Health and Wellbeing Board 26 July 2018

Title\tAir quality near schools
Report of\tDirector of Public Health
Enclosures\tAppendix 1: Monitoring Sites Map Appendix 2: School Streets Pilot Evaluation

## 1. WHY THIS REPORT IS NEEDED

Nitrogen dioxide levels fell at most monitoring sites near schools during the year.

This page is intentionally left blank

# Evaluation of the School Streets Pilot

Traffic outside the pilot schools fell by a third at drop-off times.

This page is intentionally left blank

# Frequently Asked Questions

Parents asked whether the closures apply during school holidays.

This page is intentionally left blank

# Health and Wellbeing Board Work Programme

The board will consider the pharmaceutical needs assessment in March.
"""


def test_papers_after_a_blank_page_take_their_enclosure_or_agenda_title(tmp_path):
    """A paper printed without an "Appendix n" or "AGENDA ITEM n" heading starts its own part:
    named after the report's enclosure list it repeats, else its own heading; a heading that
    repeats the next agenda item's title starts that item."""
    doc, st = _structure_of(tmp_path, UNSTAMPED_PAPERS_PACK)
    assert [(p.kind, p.agenda_item, p.title) for p in st.parts[1:]] == [
        ("report", "5", "Air quality near schools"),
        ("appendix", "5", "Air quality near schools – Appendix 2: School Streets Pilot Evaluation"),
        ("appendix", "5", "Air quality near schools – Frequently Asked Questions"),
        ("report", "6", "Health and Wellbeing Board Work Programme"),
    ]
    pilot = st.parts[2]
    assert "fell by a third" in doc.text[doc.elements[pilot.first].start:doc.elements[pilot.last - 1].end]


def test_2019_care_leaver_local_offer_is_its_listed_appendix(parsed_corpus):
    """The local offer follows the action plan's "Appendix 5: Named Officers" after a blank page;
    it is the report's listed Appendix 3, not part of the officers' list."""
    _, doc, st = parsed_corpus(PACK_2019)
    at = next(i for i, e in enumerate(doc.elements) if "at least 13 weeks after the age of 14" in e.text)
    part = next(p for p in st.parts if p.first <= at < p.last)
    assert part.kind == "appendix" and part.agenda_item == "9"
    assert part.title.endswith("– Appendix 3: Draft Care Leaver Local Offer")


@pytest.mark.parametrize("name", [PACK_2018, PACK_2019, WESTMINSTER])
def test_agenda_heading_path_names_the_agenda_once(parsed_corpus, name):
    src, _, st = parsed_corpus(name)
    agenda_blocks = [b for b in st.blocks if st.parts[b.part].kind == "agenda"]
    assert agenda_blocks
    for b in agenda_blocks:
        assert b.heading_path[:2] == (src.meta.title, "Agenda")
        assert b.heading_path.count(src.meta.title) == 1
        assert [h.lower() for h in b.heading_path].count("agenda") == 1
    for b in st.blocks:  # no part repeats its own label as its first heading
        assert len(b.heading_path) < 3 or b.heading_path[1] != b.heading_path[2], b.heading_path


@pytest.mark.parametrize("name", [PACK_2018, PACK_2019, WESTMINSTER])
def test_recommendation_blocks_are_in_reports_never_minutes(parsed_corpus, name):
    _, doc, st = parsed_corpus(name)
    recs = [b for b in st.blocks if b.kind == "recommendation"]
    assert len(recs) >= 4
    for b in recs:
        assert st.parts[b.part].kind == "report", (st.parts[b.part].title, _block_text(doc, b)[:80])
        assert st.parts[b.part].agenda_item is not None
    for b in st.blocks:
        if st.parts[b.part].kind == "minutes":
            assert b.kind != "recommendation"


def test_westminster_better_care_fund_recommendation(parsed_corpus):
    _, doc, st = parsed_corpus(WESTMINSTER)
    part_index = next(i for i, p in enumerate(st.parts) if p.title == "Better Care Fund Update")
    recs = [b for b in st.blocks if b.kind == "recommendation" and b.part == part_index]
    assert len(recs) == 1
    text = _block_text(doc, recs[0])
    assert text.startswith("2. Key Matters for the Board")
    assert "asked to note progress" in text
    assert recs[0].heading_path[1] == "Item 4: Better Care Fund Update"


# ---------------------------------------------------------------- tables


def test_table_rows_keep_tabs_and_header_row_leads_the_block(parsed_corpus):
    _, doc, st = parsed_corpus(PACK_2018)
    tables = [e for e in doc.elements if e.kind == "table"]
    assert len(tables) > 100
    assert all("\t" in e.text for e in tables)
    assert not [e.text for e in doc.elements if e.kind != "table" and "\t" in e.text]
    # Rows of one table sit on consecutive lines of the extracted text.
    assert "Item No\tTitle of Report\tPages\n1.\tMinutes of the Previous Meeting\t5 - 14\n2.\tAbsence of Members" in doc.text

    for header in ("Item No\tTitle of Report\tPages", "Indicator\tLatest performance\tYear(s)\t"):
        index = next(i for i, e in enumerate(doc.elements) if e.text.startswith(header))
        block = _block_containing(st, index)
        assert block.kind == "table"
        rows = [e for e in doc.elements[block.first:block.last] if e.kind == "table"]
        assert len(rows) >= 3
        assert rows[0].text.startswith(header)  # the header is the block's first row
        assert all(r.text.count("\t") >= 1 for r in rows)


def test_agenda_order_of_business_rows_are_tab_separated_cells(parsed_corpus):
    _, doc, _ = parsed_corpus(PACK_2018)
    row = next(e for e in doc.elements if e.text.startswith("7.\tWhole system approach to Healthy Weight"))
    assert row.kind == "table"
    assert row.text.split("\t") == ["7.", "Whole system approach to Healthy Weight (Proposed timing: 45 min)", "57 - 74"]


# ---------------------------------------------------------------- extracted text and offsets


@pytest.mark.parametrize("name", [PACK_2018, PACK_2019, WESTMINSTER])
def test_element_offsets_index_the_extracted_text(parsed_corpus, name):
    _, doc, _ = parsed_corpus(name)
    assert len(doc.elements) > 500
    assert doc.elements[0].start == 0
    assert doc.elements[-1].end == len(doc.text)
    for e in doc.elements:
        assert doc.text[e.start:e.end] == e.text
        assert e.text == e.text.strip() and e.text
    for a, b in zip(doc.elements, doc.elements[1:]):
        gap = doc.text[a.end:b.start]
        assert gap == (ROW_SEP if a.kind == b.kind == "table" else ELEMENT_SEP)


@pytest.mark.parametrize("name", BARNET_PACKS)
def test_markdown_and_html_marks_are_gone(parsed_corpus, name):
    _, doc, _ = parsed_corpus(name)
    text = doc.text
    assert "**" not in text
    assert "<p>" not in text and "</p>" not in text
    assert not re.search(r"(?i)</?(?:p|b|u|i|br|ul|ol|li|h[1-6]|strong|em|span|div|table|tr|td)\b[^>]*>", text)
    assert not re.search(r"(?m)^#{1,6} ", text), re.findall(r"(?m)^#{1,6} .{0,40}", text)[:3]
    assert not re.search(r"\]\((?:https?|mailto):", text)  # markdown links reduced to their text
    assert "\\*" not in text and "\\-" not in text
    assert "ORDER OF BUSINESS" in text
    assert "It was RESOLVED" in text or "Recommendations" in text


def test_2018_markup_cleanup_keeps_words_and_flags(parsed_corpus):
    _, doc, _ = parsed_corpus(PACK_2018)
    assert "It was therefore RESOLVED that:" in doc.text
    assert "Title\tJoint Health and Wellbeing Strategy Review and Next Steps" in doc.text  # <b> cells
    order = next(e for e in doc.elements if e.text == "ORDER OF BUSINESS")
    assert order.kind == "heading" and order.level == 2
    item6 = next(e for e in doc.elements if e.text == "6. SCREENING UPDATE (Agenda Item 6):")
    assert item6.emphasis
    # "[salar.rida@barnet.gov.uk](mailto:...)" -> the link text only
    assert "Salar Rida at salar.rida@barnet.gov.uk" in doc.text


def test_2018_cover_words_are_not_glued(parsed_corpus):
    """'**MEETING****HEALTH & WELLBEING BOARD**...': adjacent bold runs stay separate words."""
    _, doc, st = parsed_corpus(PACK_2018)
    assert "MEETINGHEALTH" not in doc.text
    assert "TIMETHURSDAY" not in doc.text
    assert doc.elements[0].text.startswith("MEETING HEALTH & WELLBEING BOARD DATE AND TIME THURSDAY 26TH JULY, 2018 AT")
    assert st.detected.meeting_date == date(2018, 7, 26)


@pytest.mark.parametrize("suffix", [".txt", ".md"])
def test_adjacent_bold_runs_are_separated(tmp_path, suffix):
    path = tmp_path / f"cover{suffix}"
    path.write_text("**Title****Board report**\n\nA **bold** word and __under____lined__ runs.\n", encoding="utf-8")
    texts = [e.text for e in parse(_source(path)).elements]
    assert texts == ["Title Board report", "A bold word and under lined runs."]


# ---------------------------------------------------------------- front sheet


def test_westminster_front_sheet_detection(parsed_corpus):
    _, _, st = parsed_corpus(WESTMINSTER)
    d = st.detected
    assert d.source == "detected"
    assert d.council == "City of Westminster"
    assert d.meeting_date == date(2015, 1, 22)
    assert d.body == "Health & Wellbeing Board"
    assert d.notes == ()


def test_2019_front_sheet_detection(parsed_corpus):
    _, _, st = parsed_corpus(PACK_2019)
    d = st.detected
    assert d.council == "London Borough of Barnet"
    assert d.meeting_date == date(2019, 1, 17)
    assert "meeting date not detected" not in d.notes


# ---------------------------------------------------------------- bad files


def _source(path: Path) -> SourceFile:
    return SourceFile(path=path, doc_id=path.stem, sha256="0" * 64, meta=None)


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("empty.txt", b"", "empty file"),
        ("blank.md", b"  \n\n\t \n", "empty file"),
        ("nul.txt", b"Minutes of the meeting\x00\x00\x01\x02" * 50, "NUL bytes"),
        ("random.pdf", None, "no %PDF header"),
        ("notes.xyz", b"The Board noted the report.", "unsupported file type .xyz"),
    ],
)
def test_bad_files_raise_parse_error(tmp_path, name, content, reason):
    path = tmp_path / name
    if content is None:
        content = bytes((i * 73 + 11) % 256 for i in range(4096))  # junk bytes, no %PDF header
    path.write_bytes(content)
    with pytest.raises(ParseError, match=re.escape(reason)):
        parse(_source(path))


def test_truncated_pdf_raises_parse_error(tmp_path, two_page_pdf):
    whole = two_page_pdf.read_bytes()
    path = tmp_path / "truncated.pdf"
    path.write_bytes(whole[:180])  # starts with %PDF, no pages, no xref, no %%EOF
    assert path.read_bytes().startswith(b"%PDF")
    with pytest.raises(ParseError) as info:
        parse(_source(path))
    assert str(info.value)  # a reason to show the user


def test_binary_junk_txt_raises_parse_error(tmp_path):
    path = tmp_path / "junk.txt"
    rnd = random.Random(7)
    path.write_bytes(bytes(rnd.randrange(1, 256) for _ in range(8192)))  # junk, but no NUL byte
    with pytest.raises(ParseError, match="binary content"):
        parse(_source(path))


# ---------------------------------------------------------------- PDF


def test_hand_written_pdf_reads_with_page_numbers(two_page_pdf):
    from indexer import offline

    path = two_page_pdf
    offline.configure()
    from unstructured.partition.pdf import partition_pdf

    found = partition_pdf(filename=str(path), strategy="fast", languages=["eng"])
    pages = {el.metadata.page_number for el in found if (el.text or "").strip()}
    assert pages == {1, 2}

    doc = parse(_source(path))
    assert doc.has_pages
    by_page = {e.page: e.text for e in doc.elements}
    assert set(by_page) == {1, 2}
    assert any("cancer screening programmes" in e.text and e.page == 1 for e in doc.elements)
    assert any("healthy weight in children" in e.text and e.page == 2 for e in doc.elements)
    for e in doc.elements:
        assert doc.text[e.start:e.end] == e.text
