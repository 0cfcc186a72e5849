"""The million-chunk parts of the index: HNSW chosen by size, memory-mapped loading, the
memory-mapped BM25 against bm25s's own scoring, chunk rows read by offset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from indexer import pipeline, store
from indexer.lexical import LexicalIndex, tokenize
from service.retrieve import Retriever

HTML_ID = "air-quality-briefing"


def _mapped(path: Path) -> bool:
    """Whether this process has the file memory-mapped."""
    return str(path) in Path("/proc/self/maps").read_text()


@pytest.fixture
def hnsw_built(tiny_corpus, settings_for, fake_encoder):
    # A threshold below the tiny corpus's size: "auto" must choose HNSW for it.
    settings = settings_for(tiny_corpus, hnsw_min_chunks=3, hnsw_m=8, hnsw_ef_construction=40, hnsw_ef_search=20)
    pipeline.build(settings, encoder=fake_encoder)
    return settings, store.load_index(settings.index_dir)


def test_a_small_threshold_makes_a_tiny_corpus_hnsw_and_search_still_finds_the_passage(hnsw_built, fake_encoder):
    import faiss

    settings, loaded = hnsw_built
    assert settings.faiss_index == "auto"
    assert isinstance(loaded.faiss_index, faiss.IndexHNSWFlat)
    assert loaded.faiss_index.hnsw.efSearch == 20  # from the manifest, not faiss's default
    entry = loaded.manifest["dense_index"]
    assert entry == {"kind": "hnsw", "requested": "auto", "hnsw_min_chunks": 3, "m": 8, "ef_construction": 40,
                     "ef_search": 20}
    retriever = Retriever(loaded, fake_encoder)
    for mode in ("dense", "hybrid"):
        hits = retriever.search("nitrogen dioxide levels monitoring sites annual limit", k=3, mode=mode)
        assert hits[0].chunk.doc_id == HTML_ID, mode
    # A filter goes through HNSW's own search parameters (plain SearchParameters raise for HNSW).
    from service.schemas import Filters

    council = hits[0].chunk.council
    filtered = retriever.search("nitrogen dioxide monitoring", k=3, mode="dense", filters=Filters(council=council))
    assert filtered and all(h.chunk.council == council for h in filtered)


def test_below_the_threshold_the_index_is_exact(tiny_corpus, settings_for, fake_encoder):
    import faiss

    settings = settings_for(tiny_corpus)  # default threshold, 100,000 chunks
    pipeline.build(settings, encoder=fake_encoder)
    loaded = store.load_index(settings.index_dir)
    assert type(loaded.faiss_index) is faiss.IndexFlatIP
    assert loaded.manifest["dense_index"] == {"kind": "flat", "requested": "auto", "hnsw_min_chunks": 100_000}
    # HNSW's exact twin: the same vectors searched both ways give the same top passage.
    hnsw = store.build_faiss(np.asarray(loaded.vectors), store.DenseSpec("hnsw", m=8))
    q = fake_encoder.encode(["nitrogen dioxide levels monitoring sites annual limit"])
    assert hnsw.search(q, 1)[1][0][0] == loaded.faiss_index.search(q, 1)[1][0][0]


def test_an_unknown_kind_is_refused_at_once():
    with pytest.raises(ValueError, match="unknown FAISS index kind"):
        store.DenseSpec("ivf")


def test_index_files_are_memory_mapped(hnsw_built):
    _, loaded = hnsw_built
    build = loaded.path
    assert isinstance(loaded.vectors, np.memmap)
    assert _mapped(build / "dense.faiss")  # FAISS's IO_FLAG_MMAP_IFC, HNSW storage and graph
    assert _mapped(build / "bm25" / "data.csc.index.npy")
    assert _mapped(build / "bm25" / "indices.csc.index.npy")
    assert _mapped(build / "chunks.jsonl")
    assert _mapped(build / "documents.jsonl")


def test_a_flat_index_is_memory_mapped_too(tiny_corpus, settings_for, fake_encoder):
    settings = settings_for(tiny_corpus, faiss_index="flat")
    pipeline.build(settings, encoder=fake_encoder)
    loaded = store.load_index(settings.index_dir)
    assert _mapped(loaded.path / "dense.faiss")
    assert loaded.manifest["dense_index"]["kind"] == "flat"


def test_chunk_rows_read_by_offset_are_the_chunks_written(hnsw_built):
    _, loaded = hnsw_built
    table = loaded.chunks
    assert isinstance(table, store.ChunkTable)
    rows = [json.loads(line) for line in (loaded.path / "chunks.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(table) == len(rows) > 5
    assert [c.id for c in table] == [r["id"] for r in rows]
    assert table[3] == store.chunk_from_json(rows[3])
    assert table[-1] == store.chunk_from_json(rows[-1])
    assert table[1:3] == [store.chunk_from_json(r) for r in rows[1:3]]
    with pytest.raises(IndexError):
        table[len(rows)]
    # A table bigger than its cache streams the file instead: the same rows.
    offsets = np.load(loaded.path / "chunks.offsets.npy")
    streamed = store.ChunkTable(loaded.path / "chunks.jsonl", offsets, cache_rows=2)
    assert list(streamed) == list(table) and streamed[4] == table[4]
    cols = table.columns()
    assert cols.ids == [r["id"] for r in rows]
    assert [cols.councils[i] for i in cols.council] == [r["council"] or "" for r in rows]


def test_document_texts_are_read_on_demand_and_match(hnsw_built):
    _, loaded = hnsw_built
    rows = [json.loads(line) for line in (loaded.path / "documents.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sorted(loaded.texts) == sorted(r["id"] for r in rows)
    for r in rows:
        assert loaded.texts[r["id"]] == r["text"]
    with pytest.raises(KeyError):
        loaded.texts["no-such-document"]


def test_a_format_3_index_is_refused_with_a_plain_message(hnsw_built):
    settings, loaded = hnsw_built
    path = loaded.path / store.MANIFEST
    m = json.loads(path.read_text())
    path.write_text(json.dumps({**m, "format_version": 3}))
    with pytest.raises(store.IndexError_, match="has format 3, expected 4: rebuild it"):
        store.load_index(settings.index_dir)


def _corpus_paragraphs(corpus_dir: Path) -> list[str]:
    out = []
    for f in sorted(corpus_dir.glob("*.txt")) + sorted(corpus_dir.glob("*.md")):
        out += [p.strip() for p in f.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    return out


def test_memory_mapped_bm25_scores_equal_bm25s_on_the_bundled_corpus(corpus_dir, repo_root, tmp_path):
    import bm25s

    texts = _corpus_paragraphs(corpus_dir)
    assert len(texts) > 200
    LexicalIndex.build(texts).save(tmp_path / "bm25")
    mapped = LexicalIndex.load(tmp_path / "bm25")
    reference = bm25s.BM25.load(str(tmp_path / "bm25"), allow_pickle=False, verbosity=0)
    questions = [json.loads(x)["question"] for x in (repo_root / "evals" / "questions.jsonl").read_text().splitlines()]
    assert len(questions) >= 40
    nonzero = 0
    for q in questions:
        tokens = [t for t in tokenize(q) if t in reference.vocab_dict]
        want = reference.get_scores(tokens) if tokens else np.zeros(len(texts), np.float32)
        got = mapped.scores(q)
        assert got.shape == (len(texts),)
        np.testing.assert_array_equal(got, np.asarray(want, dtype=np.float32), err_msg=q)
        nonzero += bool(got.max() > 0)
    assert nonzero >= len(questions) // 2  # the queries hit the corpus: not an all-zero comparison
    # A word twice in the query counts twice, as in bm25s.
    word = tokenize(questions[0])[0]
    np.testing.assert_array_equal(mapped.scores(f"{word} {word}"),
                                  np.asarray(reference.get_scores([word, word]), dtype=np.float32))


def test_a_fresh_and_a_loaded_bm25_score_alike(tmp_path):
    texts = ["screening programmes for adults", "air quality monitoring sites", "", "adult social care budget"]
    fresh = LexicalIndex.build(texts)
    fresh.save(tmp_path / "b")
    loaded = LexicalIndex.load(tmp_path / "b")
    for q in ("adult screening", "air", "nothing indexed here"):
        np.testing.assert_array_equal(fresh.scores(q), loaded.scores(q))
    assert loaded.scores("adult screening").argmax() == 0
