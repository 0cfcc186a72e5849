"""End-to-end builds with the fake encoder: load, incremental rebuilds, skipped files, crash safety.

One test (marked `model`) checks the real index of the bundled corpus built with the real model.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import random
import shutil
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pytest

from indexer import pipeline, store
from indexer.config import DEFAULT_MODEL, IndexerSettings, default_model
from indexer.discover import CorpusError

PACK_ID = "hwb-2018-07-26-pack"
MD_ID = "healthy-weight-notes"
HTML_ID = "air-quality-briefing"


def _build(settings, encoder):
    return pipeline.build(settings, encoder=encoder)


def _builds(index_dir: Path) -> list[str]:
    return sorted(p.name for p in (index_dir / store.BUILDS).iterdir())


def _by_doc(loaded, doc_id):
    return [c for c in loaded.chunks if c.doc_id == doc_id]


@pytest.fixture
def built(tiny_corpus, settings_for, fake_encoder):
    """The tiny corpus built once: (settings, report, loaded index)."""
    settings = settings_for(tiny_corpus)
    report = _build(settings, fake_encoder)
    return settings, report, store.load_index(settings.index_dir)


# ---------------------------------------------------------------- a first build


def test_build_then_load(built, tiny_corpus):
    settings, report, loaded = built
    assert settings.index_dir == tiny_corpus.parent / "index"
    assert not report.up_to_date
    assert report.documents == 3 and report.reparsed == 3
    assert report.skipped == []
    assert report.chunks == len(loaded.chunks) >= 8
    assert report.embedded == report.chunks and report.reused_vectors == 0
    assert loaded.faiss_index.ntotal == len(loaded.chunks)
    assert loaded.vectors.shape == (len(loaded.chunks), 64)
    assert loaded.vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(loaded.vectors, axis=1), 1.0, atol=1e-5)
    assert set(loaded.documents) == {PACK_ID, MD_ID, HTML_ID}

    m = loaded.manifest
    assert m["model"] == {"name": "fake-hashing-64", "dim": 64, "max_tokens": 254, "variant": "hashing",
                          "precision": "fp32", "digest": ""}  # a fake model has no files to digest
    assert m["format_version"] == store.FORMAT_VERSION
    assert m["counts"]["documents"] == 3 and m["counts"]["chunks"] == len(loaded.chunks)
    assert m["counts"]["tokens"] == sum(c.tokens for c in loaded.chunks) > 0
    for name, doc_id in ((f"{PACK_ID}.txt", PACK_ID), (f"{MD_ID}.md", MD_ID), (f"{HTML_ID}.html", HTML_ID)):
        digest = hashlib.sha256((tiny_corpus / name).read_bytes()).hexdigest()
        assert m["documents"][doc_id]["sha256"] == digest == loaded.documents[doc_id].sha256
        assert m["documents"][doc_id]["chunks"] == len(_by_doc(loaded, doc_id))
    for pkg in ("python", "faiss-cpu", "unstructured", "bm25s", "tiktoken"):
        assert m["versions"][pkg]
    built_at = datetime.fromisoformat(m["built_at"])
    assert built_at.tzinfo is not None
    assert abs((datetime.now(built_at.tzinfo) - built_at).total_seconds()) < 600

    # `current` points at the one build folder.
    assert (settings.index_dir / store.CURRENT).is_symlink()
    assert _builds(settings.index_dir) == [loaded.path.name]


def test_built_chunks_cite_the_stored_text(built):
    _, _, loaded = built
    for c in loaded.chunks:
        assert loaded.texts[c.doc_id][c.char_start:c.char_end] == c.text
    pack = loaded.documents[PACK_ID]
    kinds = [p.kind for p in pack.parts]
    assert kinds == ["agenda", "minutes", "report"]
    minutes = pack.parts[1]
    assert minutes.meeting_date == date(2018, 3, 8)
    assert loaded.texts[PACK_ID][minutes.char_start:].startswith("Decisions of the Health & Wellbeing Board")
    report = pack.parts[2]
    assert report.agenda_item == "7" and report.title == "Some report on community wellbeing"


def test_build_extracts_decisions_and_recommendations(built):
    _, report, loaded = built
    assert report.decisions == len(loaded.decisions) == 2
    decision = next(d for d in loaded.decisions if d.kind == "decision")
    assert decision.meeting_date == date(2018, 3, 8)
    assert decision.item == "6. Screening Update"
    assert decision.parts == 2
    assert decision.text.startswith("It was RESOLVED that:")
    assert "sexual health clinics" in decision.text
    assert loaded.texts[PACK_ID][decision.char_start:decision.char_end] == decision.text
    rec = next(d for d in loaded.decisions if d.kind == "recommendation")
    assert rec.meeting_date == date(2018, 7, 26)
    assert rec.item == "Item 7: Some report on community wellbeing"
    assert rec.parts == 2
    assert loaded.decisions_bm25 is not None


def test_loaded_lexical_and_dense_indexes_find_the_passage(built, fake_encoder):
    _, _, loaded = built
    scores = loaded.bm25.scores("nitrogen dioxide monitoring")
    assert scores.shape == (len(loaded.chunks),)
    assert loaded.chunks[int(np.argmax(scores))].doc_id == HTML_ID
    query = fake_encoder.encode(["nitrogen dioxide levels monitoring sites annual limit"])
    _, rows = loaded.faiss_index.search(query, 1)
    assert loaded.chunks[int(rows[0][0])].doc_id == HTML_ID


def test_file_without_metadata_gets_detected_meta_with_notes(built):
    _, report, loaded = built
    pack = loaded.documents[PACK_ID]
    assert pack.metadata_source == "metadata" and pack.notes == ()
    assert pack.title == "Health & Wellbeing Board agenda pack, 26 July 2018"

    md = loaded.documents[MD_ID]
    assert md.metadata_source == "detected"
    assert md.council == "London Borough of Barnet"
    assert md.meeting_date is None
    assert md.notes[0] == "no metadata entry; detected from the front sheet"
    assert "meeting date not detected" in md.notes and "body not detected" in md.notes
    html = loaded.documents[HTML_ID]
    assert html.metadata_source == "detected" and html.council == "City of Westminster"
    assert html.title == "Air Quality Briefing"
    assert report.notes[MD_ID] == list(md.notes)
    assert report.notes[HTML_ID] == list(html.notes)
    assert PACK_ID not in report.notes
    # The markdown/HTML marks are gone from what was indexed.
    assert "**" not in loaded.texts[MD_ID] and "](" not in loaded.texts[MD_ID]
    assert "<p>" not in loaded.texts[HTML_ID] and "<b>" not in loaded.texts[HTML_ID]


def test_load_index_refuses_another_model(built):
    settings, _, _ = built
    with pytest.raises(store.IndexError_) as info:
        store.load_index(settings.index_dir, expect_model="other")
    message = str(info.value)
    assert "'fake-hashing-64'" in message and "'other'" in message
    with pytest.raises(store.IndexError_, match="dimension 64"):
        store.load_index(settings.index_dir, expect_model="fake-hashing-64", expect_dim=384)
    assert store.load_index(settings.index_dir, expect_model="fake-hashing-64", expect_dim=64).chunks


def test_load_index_without_index(tmp_path):
    with pytest.raises(store.IndexError_, match="no index at"):
        store.load_index(tmp_path / "nothing-here")


# ---------------------------------------------------------------- incremental rebuilds


def test_unchanged_corpus_is_up_to_date_and_writes_nothing(built, fake_encoder):
    settings, first, loaded = built
    before = _builds(settings.index_dir)
    target = os.readlink(settings.index_dir / store.CURRENT)
    report = _build(settings, fake_encoder)
    assert report.up_to_date
    assert report.embedded == 0 and report.reparsed == 0
    assert (report.documents, report.chunks, report.decisions) == (first.documents, first.chunks, first.decisions)
    assert _builds(settings.index_dir) == before
    assert os.readlink(settings.index_dir / store.CURRENT) == target
    assert store.read_manifest(settings.index_dir)["built_at"] == loaded.manifest["built_at"]


def test_a_model_retrained_under_the_same_name_reembeds_everything(tiny_corpus, settings_for, tmp_path):
    """make judge retrains boardpapers/minilm-members in place: the name stays, the vectors change."""
    from indexer.embed import HashingEncoder, model_digest

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"weights": 1}')
    enc = HashingEncoder(dim=64)
    enc.name = str(folder)  # a model named by its folder, as a local model is
    settings = settings_for(tiny_corpus)
    first = _build(settings, enc)
    assert store.read_manifest(settings.index_dir)["model"]["digest"] == model_digest(str(folder)) != ""
    assert _build(settings, enc).up_to_date
    (folder / "config.json").write_text('{"weights": 2}')
    # The service refuses the old index with the new weights (query vectors would not match).
    from service.config import ServiceSettings
    from service.reload import build_services

    with pytest.raises(store.IndexError_, match="other weights"):
        build_services(ServiceSettings(index_dir=settings.index_dir, onnx_queries=False), encoder=enc, judge=None)
    again = _build(settings, enc)
    assert not again.up_to_date and again.embedded == first.chunks and again.reused_vectors == 0
    assert store.read_manifest(settings.index_dir)["model"]["digest"] == model_digest(str(folder))
    assert build_services(ServiceSettings(index_dir=settings.index_dir, onnx_queries=False), encoder=enc,
                          judge=None).index.chunks


def test_changed_file_reembeds_only_its_chunks(built, tiny_corpus, fake_encoder):
    settings, first, old = built
    md = tiny_corpus / f"{MD_ID}.md"
    md.write_text(
        md.read_text(encoding="utf-8")
        + "\n## Funding\n\nA new grant from the public health budget pays for school nurses to run weight clinics.\n",
        encoding="utf-8",
    )
    report = _build(settings, fake_encoder)
    assert not report.up_to_date
    assert report.reparsed == 1
    new = store.load_index(settings.index_dir)
    old_md_hashes = {c.content_hash for c in _by_doc(old, MD_ID)}
    new_md = _by_doc(new, MD_ID)
    changed = [c for c in new_md if c.content_hash not in old_md_hashes]
    assert report.embedded == len(changed) > 0
    assert report.reused_vectors == len(new.chunks) - len(changed)
    assert report.reused_vectors >= len(_by_doc(old, PACK_ID)) + len(_by_doc(old, HTML_ID))
    assert any("school nurses" in c.text for c in new_md)
    # Untouched documents keep their chunks and the very same vectors.
    old_rows = {c.id: i for i, c in enumerate(old.chunks)}
    for i, c in enumerate(new.chunks):
        if c.doc_id != MD_ID:
            assert c == old.chunks[old_rows[c.id]]
            assert np.array_equal(new.vectors[i], old.vectors[old_rows[c.id]])
    assert new.manifest["documents"][MD_ID]["sha256"] == hashlib.sha256(md.read_bytes()).hexdigest()
    assert new.manifest["documents"][PACK_ID] == old.manifest["documents"][PACK_ID]
    # The new build serves; the one it replaced stays until the next build (a service that read the old
    # `current` just before the switch can still load it), and no more than those two are kept.
    assert new.path != old.path and _builds(settings.index_dir) == sorted([old.path.name, new.path.name])
    assert store.load_index(settings.index_dir).path == new.path
    md.write_text(md.read_text(encoding="utf-8") + "\n\nA third version of this paragraph.\n", encoding="utf-8")
    assert not _build(settings, fake_encoder).up_to_date
    third = store.current_build(settings.index_dir)
    assert _builds(settings.index_dir) == sorted([new.path.name, third.name])


def test_removed_file_removes_its_chunks(built, tiny_corpus, fake_encoder):
    settings, first, old = built
    (tiny_corpus / f"{HTML_ID}.html").unlink()
    report = _build(settings, fake_encoder)
    assert not report.up_to_date
    assert report.documents == 2
    assert report.embedded == 0 and report.reparsed == 0
    new = store.load_index(settings.index_dir)
    assert HTML_ID not in new.documents and HTML_ID not in new.manifest["documents"]
    assert not _by_doc(new, HTML_ID)
    assert len(new.chunks) == len(old.chunks) - len(_by_doc(old, HTML_ID)) == new.faiss_index.ntotal
    assert new.bm25.scores("nitrogen dioxide").max() == 0.0


def test_metadata_change_reparses_that_file(built, tiny_corpus, fake_encoder):
    settings, _, _ = built
    meta = tiny_corpus / "metadata.toml"
    meta.write_text(meta.read_text(encoding="utf-8").replace("agenda pack, 26 July 2018", "papers, 26 July 2018"),
                    encoding="utf-8")
    report = _build(settings, fake_encoder)
    assert report.reparsed == 1 and not report.up_to_date
    new = store.load_index(settings.index_dir)
    assert new.documents[PACK_ID].title == "Health & Wellbeing Board papers, 26 July 2018"
    assert all(c.heading_path[0] == "Health & Wellbeing Board papers, 26 July 2018" for c in _by_doc(new, PACK_ID))


# ---------------------------------------------------------------- bad files


def _write_bad_files(folder: Path, pdf_bytes: bytes) -> dict[str, str]:
    rnd = random.Random(11)
    (folder / "empty.txt").write_bytes(b"")
    (folder / "junk.txt").write_bytes(bytes(rnd.randrange(0, 256) for _ in range(6000)))
    (folder / "corrupt.pdf").write_bytes(bytes(rnd.randrange(0, 256) for _ in range(3000)).replace(b"%PDF", b"xxxx"))
    (folder / "truncated.pdf").write_bytes(pdf_bytes[:200])
    (folder / "notes.xyz").write_text("The Board noted the report.", encoding="utf-8")
    return {
        "empty.txt": "empty file",
        "junk.txt": "binary content in a text file",
        "corrupt.pdf": "not a PDF",
        "truncated.pdf": "",  # unstructured's own reason; any non-empty text
        "notes.xyz": "unsupported file type .xyz",
    }


def test_bad_files_are_skipped_with_reasons(tiny_corpus, settings_for, fake_encoder, two_page_pdf):
    expected = _write_bad_files(tiny_corpus, two_page_pdf.read_bytes())
    settings = settings_for(tiny_corpus)
    report = _build(settings, fake_encoder)
    skipped = {Path(s.path).name: s.reason for s in report.skipped}
    assert set(skipped) == set(expected)
    for name, reason in expected.items():
        assert skipped[name] and reason in skipped[name], (name, skipped[name])
    assert report.documents == 3
    loaded = store.load_index(settings.index_dir)
    assert set(loaded.documents) == {PACK_ID, MD_ID, HTML_ID}
    assert {Path(s["path"]).name for s in loaded.manifest["skipped"]} == set(expected)
    # Skipped files are remembered: an unchanged corpus is still up to date, and says what it skipped.
    again = _build(settings, fake_encoder)
    assert again.up_to_date and again.embedded == 0
    assert {Path(s.path).name for s in again.skipped} == set(expected)


def test_only_bad_files_is_a_build_error(tmp_path, settings_for, fake_encoder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "empty.txt").write_bytes(b"")
    (corpus / "notes.xyz").write_text("text", encoding="utf-8")
    settings = settings_for(tmp_path)
    with pytest.raises(pipeline.BuildError, match="no file could be indexed"):
        _build(settings, fake_encoder)
    assert store.current_build(settings.index_dir) is None


def test_missing_corpus_and_bad_metadata_are_corpus_errors(tmp_path, settings_for, fake_encoder):
    with pytest.raises(CorpusError, match="corpus folder not found"):
        _build(settings_for(tmp_path / "absent"), fake_encoder)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("The Board met and noted the report.", encoding="utf-8")
    (corpus / "metadata.toml").write_text('["a.txt"]\ncouncil = "Barnet"\n', encoding="utf-8")
    with pytest.raises(CorpusError, match="needs at least a title"):
        _build(settings_for(tmp_path), fake_encoder)


def test_empty_corpus_folder_is_a_build_error(tmp_path, settings_for, fake_encoder):
    """Nothing to index is far more often a wrong folder than a wish to serve nothing."""
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "metadata.toml").write_text("", encoding="utf-8")
    settings = settings_for(tmp_path)
    with pytest.raises(pipeline.BuildError, match=r"^no files to index in .*corpus$"):
        _build(settings, fake_encoder)
    assert store.current_build(settings.index_dir) is None


def test_every_file_removed_keeps_the_previous_index(built, tiny_corpus, fake_encoder):
    settings, _, old = built
    for name in (f"{PACK_ID}.txt", f"{MD_ID}.md", f"{HTML_ID}.html"):
        (tiny_corpus / name).unlink()
    with pytest.raises(pipeline.BuildError, match="no files to index in .*; the index at .* is left as it was"):
        _build(settings, fake_encoder)
    after = store.load_index(settings.index_dir)
    assert after.path == old.path
    assert [c.id for c in after.chunks] == [c.id for c in old.chunks]
    assert _builds(settings.index_dir) == [old.path.name]


def test_every_file_now_unreadable_keeps_the_previous_index(built, tiny_corpus, fake_encoder):
    settings, _, old = built
    for name in (f"{PACK_ID}.txt", f"{MD_ID}.md", f"{HTML_ID}.html"):
        (tiny_corpus / name).write_bytes(b"")
    with pytest.raises(pipeline.BuildError, match="no file could be indexed: .*empty file.*left as it was"):
        _build(settings, fake_encoder)
    assert [c.id for c in store.load_index(settings.index_dir).chunks] == [c.id for c in old.chunks]


def test_documents_without_chunks_give_an_empty_loadable_index(tmp_path, settings_for, fake_encoder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "stub.txt").write_text("Tbc.\n", encoding="utf-8")  # too short to be a chunk
    settings = settings_for(tmp_path)
    report = _build(settings, fake_encoder)
    assert (report.documents, report.chunks, report.decisions) == (1, 0, 0)
    loaded = store.load_index(settings.index_dir)
    assert set(loaded.documents) == {"stub"}
    assert loaded.chunks == [] and loaded.faiss_index.ntotal == 0 and loaded.vectors.shape == (0, 64)
    assert loaded.bm25.scores("anything").shape == (0,)
    assert _build(settings, fake_encoder).up_to_date


def test_lexical_index_of_no_rows():
    from indexer.lexical import LexicalIndex

    empty = LexicalIndex.build([])
    assert len(empty) == 0
    assert empty.scores("screening").shape == (0,)
    assert len(LexicalIndex.build(["screening programmes", ""])) == 2


def test_same_stem_different_suffix_are_two_documents(tmp_path, settings_for, fake_encoder):
    """'briefing.txt' and 'briefing.md' must not share a doc id (and so one document text)."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "briefing.txt").write_text(
        "AIR QUALITY\n\nNitrogen dioxide levels fell at most monitoring sites during the year.\n", encoding="utf-8"
    )
    (corpus / "briefing.md").write_text(
        "# Healthy Weight\n\nThe healthy weight programme works with schools to promote active travel.\n",
        encoding="utf-8",
    )
    (corpus / "other.txt").write_text("The Board noted the report on screening programmes.\n", encoding="utf-8")
    settings = settings_for(tmp_path)
    report = _build(settings, fake_encoder)
    assert report.documents == 3
    loaded = store.load_index(settings.index_dir)
    assert set(loaded.documents) == {"briefing.md", "briefing.txt", "other"}
    assert "Nitrogen dioxide" in loaded.texts["briefing.txt"] and "healthy weight" in loaded.texts["briefing.md"]
    for c in loaded.chunks:
        assert loaded.texts[c.doc_id][c.char_start:c.char_end] == c.text
    assert _build(settings, fake_encoder).up_to_date


def test_same_bytes_under_two_names_are_indexed_once(tmp_path, settings_for, fake_encoder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    text = "AIR QUALITY\n\nNitrogen dioxide levels fell at most monitoring sites during the year.\n"
    (corpus / "briefing.txt").write_text(text, encoding="utf-8")
    (corpus / "copy of briefing.txt").write_text(text, encoding="utf-8")
    (corpus / "sub").mkdir()
    (corpus / "sub" / "briefing.txt").write_text(text, encoding="utf-8")
    (corpus / "other.txt").write_text("The Board noted the report on screening programmes.\n", encoding="utf-8")
    (corpus / "empty-1.txt").write_bytes(b"")
    (corpus / "empty-2.txt").write_bytes(b"")
    settings = settings_for(tmp_path)
    report = _build(settings, fake_encoder)
    kept = str(corpus / "briefing.txt")
    assert [(Path(d.path).relative_to(corpus).as_posix(), d.same_as) for d in report.duplicates] == [
        ("copy of briefing.txt", kept), ("sub/briefing.txt", kept)]
    # Empty files are each reported as empty, not as copies of one another.
    assert sorted(Path(s.path).name for s in report.skipped) == ["empty-1.txt", "empty-2.txt"]
    loaded = store.load_index(settings.index_dir)
    assert set(loaded.documents) == {"briefing", "other"}
    assert sum("Nitrogen dioxide" in c.text for c in loaded.chunks) == 1
    assert loaded.manifest["duplicates"] == [{"path": d.path, "same_as": d.same_as} for d in report.duplicates]

    again = _build(settings, fake_encoder)
    assert again.up_to_date and again.duplicates == report.duplicates  # and still says so

    (corpus / "briefing.txt").unlink()  # the copy kept is gone: the next one in path order takes its place
    report = _build(settings, fake_encoder)
    assert [Path(d.path).name for d in report.duplicates] == ["briefing.txt"]
    assert set(store.load_index(settings.index_dir).documents) == {"copy-of-briefing", "other"}


def test_a_copy_with_metadata_is_the_one_indexed(tmp_path, settings_for, fake_encoder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    text = "The Board noted the report on screening programmes across the borough.\n"
    (corpus / "a.txt").write_text(text, encoding="utf-8")
    (corpus / "b.txt").write_text(text, encoding="utf-8")
    (corpus / "metadata.toml").write_text('["b.txt"]\ntitle = "Screening note"\n', encoding="utf-8")
    report = _build(settings_for(tmp_path), fake_encoder)
    assert [(Path(d.path).name, Path(d.same_as).name) for d in report.duplicates] == [("a.txt", "b.txt")]


@pytest.mark.parametrize(
    "names, ids",
    [
        (["a.txt", "b.md", "sub/c.pdf"], ["a", "b", "sub--c"]),
        (["briefing.md", "briefing.txt"], ["briefing.md", "briefing.txt"]),
        (["briefing.txt", "briefing.md"], ["briefing.txt", "briefing.md"]),
        # Names that differ only in characters made URL-safe: numbered, never shared.
        (["a b.txt", "a-b.txt", "a_b.txt"], ["a-b.txt", "a-b.txt-2", "a_b"]),
        (["a b.txt", "a-b.txt", "a-b.txt-2.pdf"], ["a-b.txt", "a-b.txt-3", "a-b.txt-2"]),
    ],
)
def test_doc_ids_are_distinct_and_keep_the_stem_when_they_can(names, ids):
    from indexer.discover import doc_ids_for

    assert doc_ids_for([Path(n) for n in names]) == ids


def test_bundled_corpus_doc_ids_are_the_file_stems(corpus_dir):
    """evals/questions.jsonl cites documents by these ids."""
    from indexer.discover import discover

    assert [s.doc_id for s in discover(corpus_dir)] == [
        "barnet-hwb-2018-07-26-agenda-pack",
        "barnet-hwb-2019-01-17-agenda-pack",
        "barnet-jhws-progress-report-2016-11-to-2017-02",
        "barnet-plan-healthy-2021-22-q2",
        "westminster-hwb-2015-01-22-agenda-pack",
    ]


# ---------------------------------------------------------------- sidecar metadata


SIDECAR = """\
title = "24-00115 - EqIA"
council = "Kent County Council"
body = "Cabinet"
meeting_date = 2025-01-30
document_type = "document"
agenda_item = 8
agenda_title = "24/00115 - Kent County Council Integrated Care Strategy (KCC ICS) Delivery Plan"
source_url = "https://democracy.example.gov.uk/documents/s502/24-00115%20-%20EqIA.pdf"

[moderngov]
meeting_id = 9001
"""


def test_sidecar_gives_a_file_its_metadata(tmp_path, settings_for, fake_encoder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "eqia.txt").write_text("EQIA Submission Form\n\nThe aim of the strategy is to improve the health "
                                     "and wellbeing of the people of the county.\n", encoding="utf-8")
    (corpus / "eqia.txt.meta.toml").write_text(SIDECAR, encoding="utf-8")
    (corpus / "orphan.pdf.meta.toml").write_text(SIDECAR, encoding="utf-8")  # its file never arrived
    settings = settings_for(tmp_path)
    report = _build(settings, fake_encoder)
    assert report.skipped == [] and report.notes == {}
    loaded = store.load_index(settings.index_dir)
    assert set(loaded.documents) == {"eqia"}  # a sidecar is not a document
    rec = loaded.documents["eqia"]
    assert (rec.title, rec.council, rec.body, rec.meeting_date, rec.metadata_source) == (
        "24-00115 - EqIA", "Kent County Council", "Cabinet", date(2025, 1, 30), "sidecar")
    assert rec.source_url.endswith("/documents/s502/24-00115%20-%20EqIA.pdf")
    assert [p.agenda_item for p in rec.parts] == ["8"]
    item = "Item 8: 24/00115 - Kent County Council Integrated Care Strategy (KCC ICS) Delivery Plan"
    assert {c.agenda_item for c in loaded.chunks} == {item}

    # Written by hand, a metadata.toml entry takes precedence over what the site said.
    (corpus / "metadata.toml").write_text('["eqia.txt"]\ntitle = "Equality impact assessment"\n', encoding="utf-8")
    _build(settings, fake_encoder)
    rec = store.load_index(settings.index_dir).documents["eqia"]
    assert (rec.title, rec.body, rec.metadata_source, rec.source_url) == (
        "Equality impact assessment", None, "metadata", None)


def test_sidecar_without_a_council_has_it_detected(tmp_path, settings_for, fake_encoder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "frontsheet.txt").write_text("AGENDA\n\nCABINET\n\nKent County Council\n\n1. Apologies\n",
                                           encoding="utf-8")
    (corpus / "eqia.txt").write_text("EQIA Submission Form\n\nThe aim is to improve health in the county.\n",
                                     encoding="utf-8")
    without = "\n".join(line for line in SIDECAR.splitlines() if not line.startswith("council"))
    (corpus / "frontsheet.txt.meta.toml").write_text(without.replace("24-00115 - EqIA", "Agenda frontsheet"),
                                                     encoding="utf-8")
    (corpus / "eqia.txt.meta.toml").write_text(without, encoding="utf-8")
    report = _build(settings_for(tmp_path), fake_encoder)
    docs = store.load_index(settings_for(tmp_path).index_dir).documents
    assert docs["frontsheet"].council == "Kent County Council"
    assert report.notes["frontsheet"] == ["council detected from the front sheet"]
    assert docs["eqia"].council == "Kent County Council"
    assert report.notes["eqia"] == ["council taken from the other papers of the Cabinet meeting of 30 January 2025"]


def test_malformed_sidecar_is_a_corpus_error(tmp_path, settings_for, fake_encoder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("The Board met and noted the report.", encoding="utf-8")
    (corpus / "a.txt.meta.toml").write_text('body = "Cabinet"\n', encoding="utf-8")
    with pytest.raises(CorpusError, match=r"a\.txt\.meta\.toml needs at least a title"):
        _build(settings_for(tmp_path), fake_encoder)


# ---------------------------------------------------------------- crash safety


def _boom(*args, **kwargs):
    raise RuntimeError("simulated crash while writing the index")


@pytest.mark.parametrize("where", ["bm25", "faiss"])
def test_interrupted_build_leaves_the_old_index(built, tiny_corpus, fake_encoder, monkeypatch, where):
    settings, _, old = built
    old_ids = [c.id for c in old.chunks]
    (tiny_corpus / f"{PACK_ID}.txt").write_text(
        (tiny_corpus / f"{PACK_ID}.txt").read_text(encoding="utf-8") + "\nA late addendum about dental health.\n",
        encoding="utf-8",
    )
    if where == "bm25":
        monkeypatch.setattr(store.LexicalIndex, "build", classmethod(_boom))
    else:
        import faiss

        monkeypatch.setattr(faiss, "serialize_index", _boom)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _build(settings, fake_encoder)
    monkeypatch.undo()

    after = store.load_index(settings.index_dir)
    assert after.path == old.path
    assert [c.id for c in after.chunks] == old_ids
    assert not any("dental" in c.text for c in after.chunks)
    leftovers = [p.name for p in (settings.index_dir / store.BUILDS).iterdir() if p.name.startswith(".tmp-")]
    assert leftovers == []
    assert _builds(settings.index_dir) == [old.path.name]
    assert not [p.name for p in settings.index_dir.iterdir() if p.name.startswith(f".{store.CURRENT}-")]

    # The next build, without the fault, picks up the change.
    report = _build(settings, fake_encoder)
    assert not report.up_to_date and report.embedded > 0
    assert any("dental" in c.text for c in store.load_index(settings.index_dir).chunks)


# ---------------------------------------------------------------- PDF


def test_pdf_is_indexed_with_page_numbers(tmp_path, settings_for, fake_encoder, pdf_factory):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    pdf_factory(
        corpus / "briefing.pdf",
        [
            ["SCREENING PROGRAMMES", "The Board noted the report on cancer screening programmes across the borough."],
            ["HEALTHY WEIGHT", "The Board discussed the whole system approach to healthy weight in children."],
        ],
    )
    settings = settings_for(tmp_path)
    report = _build(settings, fake_encoder)
    assert report.skipped == [] and report.documents == 1
    loaded = store.load_index(settings.index_dir)
    assert loaded.documents["briefing"].pages == 2
    pages = {c.page for c in loaded.chunks}
    assert pages == {1, 2}
    screening = next(c for c in loaded.chunks if "cancer screening" in c.text)
    weight = next(c for c in loaded.chunks if "healthy weight in children" in c.text)
    assert screening.page == 1 and weight.page == 2
    assert "healthy weight" not in screening.text.lower()


# ---------------------------------------------------------------- the real index


@pytest.mark.model
def test_real_index_of_the_bundled_corpus(real_index, corpus_dir, tmp_path):
    loaded = store.load_index(real_index, expect_model=default_model(), expect_dim=384)
    assert len(loaded.chunks) > 1000
    assert loaded.faiss_index.ntotal == len(loaded.chunks)
    assert loaded.manifest["model"]["max_tokens"] == 254
    assert len(loaded.documents) == 5 and loaded.manifest["skipped"] == []
    march = [d for d in loaded.decisions if d.kind == "decision" and d.meeting_date == date(2018, 3, 8)]
    screening = [d for d in march if d.parts == 5 and "screening" in d.text.lower()]
    assert len(screening) == 1
    assert screening[0].item == "6. Screening Update"
    assert screening[0].doc_id == "barnet-hwb-2018-07-26-agenda-pack"

    # Rebuild a copy, so a failure here cannot disturb the shared index other tests load.
    copy = tmp_path / "index-copy"
    shutil.copytree(real_index, copy, symlinks=True)
    before = _builds(copy)
    report = pipeline.build(IndexerSettings(corpus_dir=corpus_dir, index_dir=copy, model=default_model(), progress=False))
    assert report.up_to_date
    assert report.embedded == 0 and report.reparsed == 0
    assert report.chunks == len(loaded.chunks)
    assert _builds(copy) == before


# ---------------------------------------------------------------- sentences


def test_sentences_are_stored_in_chunk_order_within_their_chunks(built):
    _, report, loaded = built
    spans = loaded.sentences
    assert len(spans) > len(loaded.chunks) and report.embedded_sentences == len(spans)
    assert loaded.sentence_vectors.shape == (len(spans), 64)
    assert np.allclose(np.linalg.norm(loaded.sentence_vectors, axis=1), 1.0, atol=1e-5)
    rows = [x.chunk_row for x in spans]
    assert rows == sorted(rows) and set(rows) == set(range(len(loaded.chunks)))
    for x in spans:
        c = loaded.chunks[x.chunk_row]
        assert c.char_start <= x.start < x.end <= c.char_end
        assert loaded.texts[c.doc_id][x.start:x.end].strip()
    assert loaded.manifest["counts"]["sentences"] == len(spans)


def test_changed_file_reembeds_only_its_new_sentences(built, tiny_corpus, fake_encoder):
    from indexer.sentences import embed_text

    settings, _, old = built
    md = tiny_corpus / f"{MD_ID}.md"
    md.write_text(md.read_text(encoding="utf-8") + "\n## Funding\n\nA new grant pays for school nurses.\n", encoding="utf-8")
    report = _build(settings, fake_encoder)
    new = store.load_index(settings.index_dir)
    old_hashes = {x.content_hash for x in old.sentences}
    fresh = [x for x in new.sentences if x.content_hash not in old_hashes]
    assert report.embedded_sentences == len(fresh) > 0
    # Separate (the default): every stored vector is the encoder's vector of the sentence's embedded text.
    assert new.manifest["fingerprint"]["sentence_vectors"] == "separate"
    for i in (0, len(new.sentences) - 1):
        x = new.sentences[i]
        c = new.chunks[x.chunk_row]
        expect = fake_encoder.encode([embed_text(c, new.texts[c.doc_id][x.start:x.end])])[0]
        assert np.allclose(new.sentence_vectors[i], expect, atol=1e-6)


def test_pooled_sentence_vectors_come_from_the_chunks_pass(built, tiny_corpus, fake_encoder):
    settings, _, old = built
    pooled = settings.model_copy(update={"sentence_vectors": "pooled"})
    # A change of mode re-embeds every sentence (its vector is another one) and says so in the manifest.
    report = _build(pooled, fake_encoder)
    assert not report.up_to_date and report.embedded_sentences == len(old.sentences) > 0
    new = store.load_index(settings.index_dir)
    assert new.manifest["fingerprint"]["sentence_vectors"] == "pooled"
    assert [(x.chunk_row, x.start, x.end) for x in new.sentences] == [(x.chunk_row, x.start, x.end) for x in old.sentences]
    # Each is the encoder's span vector of the sentence within its chunk, which for the bag-of-words
    # test encoder is the vector of the sentence's own words (no section path).
    for i in (0, len(new.sentences) - 1):
        x = new.sentences[i]
        expect = fake_encoder.encode([new.texts[new.chunks[x.chunk_row].doc_id][x.start:x.end]])[0]
        assert np.allclose(new.sentence_vectors[i], expect, atol=1e-6)
    assert _build(pooled, fake_encoder).up_to_date
    # An edit re-pools only the sentences of the chunks it changed.
    md = tiny_corpus / f"{MD_ID}.md"
    md.write_text(md.read_text(encoding="utf-8") + "\n## Funding\n\nA new grant pays for school nurses.\n", encoding="utf-8")
    edited = _build(pooled, fake_encoder)
    after = store.load_index(settings.index_dir)
    fresh = {x.chunk_row for x in after.sentences if x.content_hash not in {y.content_hash for y in new.sentences}}
    assert 0 < edited.embedded == len(fresh) < len(after.chunks)
    assert edited.embedded_sentences == sum(1 for x in after.sentences if x.chunk_row in fresh)


def test_sentence_vectors_that_do_not_match_their_spans_are_refused(built):
    settings, _, loaded = built
    build = store.current_build(settings.index_dir)
    # A copy first: the loaded vectors are a memory map of the very file rewritten here.
    np.save(build / "sentence_vectors.npy", np.array(loaded.sentence_vectors[:-1]), allow_pickle=False)
    with pytest.raises(store.IndexError_, match=r"sentence_vectors\.npy has \d+ bytes, the manifest says"):
        store.load_index(settings.index_dir)
    # Past the checksums (the manifest rewritten to match), the spans are still checked against the vectors.
    manifest = json.loads((build / store.MANIFEST).read_text(encoding="utf-8"))
    (build / store.MANIFEST).write_text(json.dumps({**manifest, "files": store.file_sums(build)}), encoding="utf-8")
    with pytest.raises(store.IndexError_, match="inconsistent sentence vectors"):
        store.load_index(settings.index_dir)


def test_vectors_of_another_encoder_variant_are_not_reused(built, fake_encoder):
    # fp32 and int8 vectors of one model are close, not equal: a build of another variant embeds
    # everything again and says which variant its vectors are.
    settings, first, old = built
    other = copy.copy(fake_encoder)
    other.variant = "hashing-other"
    report = _build(settings, other)
    assert not report.up_to_date
    assert report.embedded == report.chunks == len(old.chunks) and report.reused_vectors == 0
    assert report.embedded_sentences == len(old.sentences) > 0
    assert store.load_index(settings.index_dir).manifest["model"]["variant"] == "hashing-other"
    again = _build(settings, other)
    assert again.up_to_date


def test_parsing_in_a_process_pool_builds_the_same_index(tmp_path, tiny_corpus_factory, settings_for, fake_encoder,
                                                         two_page_pdf):
    # Enough files for the pool (pipeline._POOL_FROM_FILES), one of them unreadable as a PDF: the
    # pool must report the same skips and give the same chunks as parsing one file after another.
    corpus = tiny_corpus_factory(tmp_path / "corpus")
    for n in range(pipeline._POOL_FROM_FILES):
        (corpus / f"note-{n}.md").write_text(f"# Note {n}\n\nThe board noted item {n} on school meals funding.\n",
                                             encoding="utf-8")
    shutil.copy(two_page_pdf, corpus / "two-pages.pdf")
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4 not really a pdf")
    pooled = _build(settings_for(corpus, index_dir=tmp_path / "pooled", parse_workers=2), fake_encoder)
    serial = _build(settings_for(corpus, index_dir=tmp_path / "serial", parse_workers=1), fake_encoder)
    assert pooled.reparsed == serial.reparsed >= pipeline._POOL_FROM_FILES + 3
    assert [s.path for s in pooled.skipped] == [s.path for s in serial.skipped] == [str(corpus / "broken.pdf")]
    a, b = store.load_index(tmp_path / "pooled"), store.load_index(tmp_path / "serial")
    assert a.chunks == b.chunks and len(a.chunks) > 0
    assert np.array_equal(a.vectors, b.vectors)


def test_a_build_of_few_files_parses_in_a_worker_process_to_the_same_records(tmp_path, tiny_corpus, settings_for,
                                                                             two_page_pdf, monkeypatch):
    # Fewer files than the pool's threshold, a PDF and an unreadable one among them: parsed apart
    # (so unstructured and spaCy never load beside the model), the records and skips are the ones
    # parsing here gives.
    shutil.copy(two_page_pdf, tiny_corpus / "two-pages.pdf")
    (tiny_corpus / "broken.pdf").write_bytes(b"%PDF-1.4 not really a pdf")
    from indexer.discover import discover

    sources = discover(tiny_corpus)
    assert 3 < len(sources) < pipeline._POOL_FROM_FILES
    settings = settings_for(tiny_corpus)
    here_report, here_skipped = pipeline.BuildReport(settings.index_dir), {}
    here = pipeline._parse_many(sources, settings, here_report, here_skipped)

    def not_here(*args, **kwargs):
        raise AssertionError("parsed in the build's own process")

    monkeypatch.setattr(pipeline, "_parse_or_skip", not_here)
    apart_report, apart_skipped = pipeline.BuildReport(settings.index_dir), {}
    apart = pipeline._parse_many(sources, settings, apart_report, apart_skipped, apart=True)
    assert apart == here and len(apart) == len(sources) - 1
    assert apart_report.skipped == here_report.skipped and [s.path for s in apart_report.skipped] == [
        str(tiny_corpus / "broken.pdf")]
    assert apart_skipped == here_skipped
    assert pipeline._parse_many([], settings, apart_report, apart_skipped, apart=True) == {}


@pytest.mark.parametrize("model, given, apart", [(DEFAULT_MODEL, False, True), ("fake-hashing-64", False, False),
                                                 (DEFAULT_MODEL, True, False)])
def test_only_a_build_that_loads_the_model_parses_apart(tmp_path, tiny_corpus, settings_for, fake_encoder, monkeypatch,
                                                        model, given, apart):
    seen = []

    class Stop(Exception):
        pass

    def record(sources, settings, report, skipped_sha, apart=False):
        seen.append(apart)
        raise Stop

    monkeypatch.setattr(pipeline, "_parse_many", record)
    with pytest.raises(Stop):
        pipeline.build(settings_for(tiny_corpus, model=model), fake_encoder if given else None)
    assert seen == [apart]


def test_a_text_that_recurs_in_a_build_is_encoded_once(settings_for, tmp_path, fake_encoder):
    # Papers repeat themselves (standing items, a paragraph in a report and its appendix): each distinct
    # content hash is encoded once and every row holding it gets that vector; reused hashes not at all.
    seen: list[str] = []
    real = fake_encoder.encode

    def counting(texts, *a, **k):
        seen.extend(texts)
        return real(texts, *a, **k)

    fake_encoder.encode = counting
    texts = {"a": "apologies for absence", "b": "the board noted the report", "c": "screening uptake rose"}
    hashes = ["a", "b", "a", "c", "a", "b"]
    reused = {"c": np.full(64, 0.125, np.float32)}
    vectors, _, embedded = pipeline._embed(hashes, lambda i: texts[hashes[i]], reused, fake_encoder,
                                           settings_for(tmp_path), "sentences", None)
    assert sorted(seen) == sorted([texts["a"], texts["b"]]) and embedded == 5
    assert np.array_equal(vectors[0], vectors[2]) and np.array_equal(vectors[0], vectors[4])
    assert np.array_equal(vectors[1], vectors[5]) and np.array_equal(vectors[3], reused["c"])
    assert np.allclose(vectors[0], real([texts["a"]])[0]) and not np.allclose(vectors[0], vectors[1])
