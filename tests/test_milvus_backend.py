"""The Milvus backend against a real milvus-lite server on loopback: the same rankings and best-sentence
scores as the local backend on the tiny corpus, incremental and atomic publishing of chunks and sentence spans, then the search API tests and the
held-out retrieval eval on the bundled corpus published to it. Nothing is mocked."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from milvus_fixtures import milvus_uri  # noqa: F401

from indexer import pipeline, store
from indexer.backends import Where, open_backend
from indexer.backends.milvus import MilvusError, filter_expr, publish, query_weights, term_id

pytest.importorskip("pymilvus")

REPO = Path(__file__).resolve().parent.parent
QUERIES = ["bowel screening uptake", "community wellbeing programme priorities", "air quality near schools",
           "nitrogen dioxide 2018", "healthy weight water-only schools"]
WHERES = [Where(), Where(council="barnet"), Where(council="WESTMINSTER"), Where(body="wellbeing board"),
          Where(document_type="agenda_pack"), Where(decisions_only=True),
          Where(date_from=__import__("datetime").date(2018, 7, 1)), Where(date_to=__import__("datetime").date(2018, 7, 1)),
          Where(council="nowhere borough")]


@pytest.fixture
def tiny_published(tiny_corpus, settings_for, fake_encoder, milvus_uri, request):  # noqa: F811
    settings = settings_for(tiny_corpus, backend="milvus", milvus_uri=milvus_uri,
                            milvus_alias=f"tiny_{request.node.name[:40].replace('[', '_').replace(']', '_').replace('-', '_')}")
    report = pipeline.build(settings, encoder=fake_encoder)
    return settings, report


def _ids(ranked):
    return [i for i, _ in ranked]


def _same_ranking(got, want, why, tol=1e-4):
    """The same scores, best first, and the same chunks but where scores tie (either may break a tie)."""
    assert len(got) == len(want), why
    assert np.allclose([s for _, s in got], [s for _, s in want], rtol=tol, atol=1e-6), why
    w = dict(want)
    for i, score in got:
        assert i not in w or abs(w[i] - score) <= tol * abs(score) + 1e-6, why
    if want:
        cut = want[-1][1] + tol * abs(want[-1][1]) + 1e-6  # chunks tied with the last may differ
        assert {i for i, s in got if s > cut} == {i for i, s in want if s > cut}, why


def test_milvus_ranks_as_the_local_backend_under_every_filter(tiny_published, fake_encoder):
    settings, report = tiny_published
    index = store.load_index(settings.index_dir)
    local = open_backend("local", index)
    milvus = open_backend("milvus", index, uri=settings.milvus_uri)
    assert milvus.name == "milvus" and milvus.count() == len(index.chunks) > 0
    compared = 0
    for q in QUERIES:
        qv = fake_encoder.encode([q])[0]
        for where in WHERES:
            want_dense, got_dense = local.dense(qv, where, 10), milvus.dense(qv, where, 10)
            _same_ranking(got_dense, want_dense, (q, where))
            # BM25 weights are bm25s's formula over the same tokens: the same scores.
            _same_ranking(milvus.lexical(q, where, 10), local.lexical(q, where, 10), (q, where))
            compared += len(want_dense)
        # Best sentences, read from the sentence collection and from the folder's vectors: the same
        # scores for every chunk (all of them: those with sentences, those without, an unknown id).
        ids = [c.id for c in index.chunks] + ["no-such-chunk"]
        want, got = local.best_sentences(qv, ids), milvus.best_sentences(qv, ids)
        _same_ranking(got, want, q)
        assert len(want) == len({x.chunk_row for x in index.sentences}) > 10
    assert compared > 50  # the filters left something to compare
    assert milvus.count_sentences() == len(index.sentences)


def test_hybrid_search_on_milvus_is_the_local_ranking(tiny_published, fake_encoder):
    """The whole retriever (BM25, dense, best sentence at the service's weights) on each backend."""
    from service.retrieve import Retriever

    settings, _ = tiny_published
    index = store.load_index(settings.index_dir)
    kw = {"fusion": "weighted", "sentence_weight": 0.3, "kind_boost": 0.2, "short_penalty": 0.2}
    local = Retriever(index, fake_encoder, backend=open_backend("local", index), **kw)
    milvus = Retriever(index, fake_encoder, backend=open_backend("milvus", index, uri=settings.milvus_uri), **kw)
    assert local.sentence_weight == 0.3
    for q in QUERIES:
        want = [(h.chunk.id, h.score) for h in local.search(q, k=10)]
        _same_ranking([(h.chunk.id, h.score) for h in milvus.search(q, k=10)], want, q)


def test_the_limit_cutting_the_sentence_hits_asks_again_for_the_rest(tiny_published, fake_encoder, monkeypatch):
    from indexer.backends import milvus as milvus_module

    settings, _ = tiny_published
    index = store.load_index(settings.index_dir)
    backend = open_backend("milvus", index, uri=settings.milvus_uri)
    qv = fake_encoder.encode(["air quality near schools"])[0]
    ids = [c.id for c in index.chunks]
    want = backend.best_sentences(qv, ids)
    monkeypatch.setattr(milvus_module, "MAX_LIMIT", 3)  # three sentences a search: many rounds
    _same_ranking(backend.best_sentences(qv, ids), want, "limit 3")


def test_the_manifest_records_what_serves(tiny_published):
    settings, report = tiny_published
    entry = store.read_manifest(settings.index_dir)["milvus"]
    assert entry == report.published
    assert entry["alias"] == settings.milvus_alias and entry["mode"] == "rebuild"
    assert entry["collection"].startswith(settings.milvus_alias + "_")
    assert entry["sentence_alias"] == settings.milvus_alias + "_sentences"
    assert entry["sentences"] == entry["sentences_written"] == len(store.load_index(settings.index_dir).sentences)


def test_a_collection_published_without_sentence_spans_asks_for_a_build(milvus_uri):  # noqa: F811
    from indexer.backends.milvus import MilvusBackend, _client, create_collection

    client = _client(milvus_uri, None)
    create_collection(client, "chunks_only_s1", 8)
    client.create_alias("chunks_only_s1", "chunks_only")
    with pytest.raises(MilvusError, match="no sentence spans beside it"):
        MilvusBackend.connect(milvus_uri, None, "chunks_only")


def test_changed_document_is_upserted_and_a_removed_one_deleted(tiny_published, fake_encoder):
    settings, first = tiny_published
    before = store.load_index(settings.index_dir)
    again = pipeline.build(settings, encoder=fake_encoder)
    assert again.up_to_date and again.published["mode"] == "incremental"
    assert again.published["written"] == 0 and again.published["deleted"] == 0
    assert again.published["sentences_written"] == 0 and again.published["sentences_deleted"] == 0
    assert again.published["collection"] == first.published["collection"]

    md = settings.corpus_dir / "healthy-weight-notes.md"
    md.write_text(md.read_text() + "\n## Funding\n\nThe programme received £1.5m from the public health grant.\n")
    (settings.corpus_dir / "air-quality-briefing.html").unlink()
    report = pipeline.build(settings, encoder=fake_encoder)
    after = store.load_index(settings.index_dir)
    pub = report.published
    assert pub["mode"] == "incremental" and pub["collection"] == first.published["collection"]
    gone = {c.id for c in before.chunks} - {c.id for c in after.chunks}
    new = {c.id for c in after.chunks} - {c.id for c in before.chunks}
    assert gone and new
    assert pub["deleted"] == len(gone) and 0 < pub["written"] < len(after.chunks)
    # Sentence spans by content hash: the new ones written, the removed document's deleted, the rest kept.
    from indexer.backends.base import sentences_of

    s_before = {x.id: x.content_hash for x in sentences_of([c.id for c in before.chunks], before.sentences)}
    s_after = {x.id: x.content_hash for x in sentences_of([c.id for c in after.chunks], after.sentences)}
    assert pub["sentences_deleted"] == len(s_before.keys() - s_after.keys()) > 0
    assert pub["sentences_written"] == sum(s_before.get(i) != h for i, h in s_after.items())
    assert 0 < pub["sentences_written"] < len(after.sentences) == pub["sentences"]
    milvus = open_backend("milvus", after, uri=settings.milvus_uri)
    assert milvus.count() == len(after.chunks) and milvus.count_sentences() == len(after.sentences)
    assert dict(milvus.row_hashes(milvus.sentences)) == s_after
    qv = fake_encoder.encode(["public health grant funding"])[0]
    ids = [c.id for c in after.chunks]
    _same_ranking(milvus.best_sentences(qv, ids), open_backend("local", after).best_sentences(qv, ids), "after")
    found = _ids(milvus.lexical("£1.5m public health grant funding", Where(), 5))
    assert found and found[0] in new
    assert not set(_ids(milvus.lexical("nitrogen dioxide air quality", Where(), 50))) & gone


def test_rebuild_goes_into_a_new_collection_and_switches_the_alias(tiny_published):
    settings, first = tiny_published
    index = store.load_index(settings.index_dir)
    old = first.published["collection"]
    entry = publish(index.chunks, index.vectors, index.sentences, index.sentence_vectors,
                    index.manifest["model"]["name"], uri=settings.milvus_uri, alias=settings.milvus_alias, rebuild=True)
    assert entry["mode"] == "rebuild" and entry["collection"] != old
    milvus = open_backend("milvus", index, uri=settings.milvus_uri)
    assert milvus.client.describe_collection(settings.milvus_alias)["collection_name"] == entry["collection"]
    assert milvus.client.describe_collection(entry["sentence_alias"])["collection_name"] == \
        entry["sentence_collection"] == entry["collection"] + "_sentences"
    assert not milvus.client.has_collection(old) and not milvus.client.has_collection(old + "_sentences")
    assert milvus.count() == len(index.chunks) and milvus.count_sentences() == len(index.sentences)


def test_an_index_never_published_says_how_to_publish_it(tiny_corpus, settings_for, fake_encoder, milvus_uri):  # noqa: F811
    settings = settings_for(tiny_corpus)
    pipeline.build(settings, encoder=fake_encoder)
    with pytest.raises(MilvusError, match="BOARDPAPERS_BACKEND=milvus"):
        open_backend("milvus", store.load_index(settings.index_dir), uri=milvus_uri)


def test_no_server_is_a_build_error_and_the_folder_is_still_built(tiny_corpus, settings_for, fake_encoder):
    settings = settings_for(tiny_corpus, backend="milvus", milvus_uri=None)
    with pytest.raises(pipeline.BuildError, match="BOARDPAPERS_MILVUS_URI"):
        pipeline.build(settings, encoder=fake_encoder)
    assert store.current_build(settings.index_dir) is not None


def test_unknown_backend_is_refused_at_start():
    from indexer.config import IndexerSettings
    from service.config import ServiceSettings

    for cls in (IndexerSettings, ServiceSettings):
        with pytest.raises(ValueError, match="unknown backend 'elastic'"):
            cls(backend="elastic")


def test_filters_are_quoted_not_interpolated_and_queries_are_our_tokens():
    assert query_weights("The £1.5m budget, the budget for 2017/18") == {
        term_id("1.5m"): 1.0, term_id("budget"): 2.0, term_id("2017"): 1.0, term_id("18"): 1.0}
    expr = filter_expr(Where(council='Barnet" or id != "', document_type="minutes"))
    assert expr == 'council like "%barnet\\" or id != \\"%" and document_type == "minutes"'


# ---------------------------------------------------------------- the bundled corpus on Milvus


@pytest.fixture(scope="session")
def milvus_real_index(real_index, milvus_uri, tmp_path_factory):  # noqa: F811
    """A copy of the real index, published to the server by the indexer (python -m indexer build's path)."""
    from indexer.config import IndexerSettings

    folder = tmp_path_factory.mktemp("milvus-real") / "index"
    shutil.copytree(real_index, folder, symlinks=True)
    manifest = store.read_manifest(folder)
    settings = IndexerSettings(corpus_dir=REPO / "corpus", index_dir=folder, model=manifest["model"]["name"],
                               progress=False, backend="milvus", milvus_uri=milvus_uri, milvus_alias="bundled")
    report = pipeline.build(settings)
    assert report.up_to_date and report.published["chunks"] == manifest["counts"]["chunks"]
    return folder


@pytest.fixture(scope="session")
def milvus_app_client(milvus_real_index, milvus_uri):  # noqa: F811
    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.config import ServiceSettings

    settings = ServiceSettings(index_dir=milvus_real_index, backend="milvus", milvus_uri=milvus_uri)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.mark.model
def test_the_service_searches_milvus(milvus_app_client):
    services = milvus_app_client.app.state.services
    assert services.retriever.backend.name == "milvus"
    assert services.retriever.backend.collection == "bundled"


@pytest.fixture(scope="module")
def both_retrievers(milvus_real_index, milvus_uri):  # noqa: F811
    """{backend: Retriever} over the one loaded index and encoder, configured as the service is."""
    from indexer.embed import load_encoder
    from service.config import ServiceSettings
    from service.retrieve import Retriever

    index = store.load_index(milvus_real_index)
    encoder = load_encoder(index.manifest["model"]["name"])
    encoder.enable_onnx()  # as the service encodes queries
    return {backend: Retriever.from_settings(index, encoder, ServiceSettings(
        index_dir=milvus_real_index, backend=backend, milvus_uri=milvus_uri)) for backend in ("local", "milvus")}


def _recall_at_5(retriever, index_dir: Path, questions_file: Path) -> tuple[float, int]:
    from evals.questions import load_questions
    from evals.run import held_by_index, score_questions

    questions = held_by_index(load_questions(questions_file), index_dir)
    result = score_questions("hybrid", questions, lambda q, k: [h.chunk.text for h in retriever.search(q, k)], 10)
    return result.metrics["recall@5"], len(questions)


@pytest.mark.model
@pytest.mark.parametrize("held_out", ["heldout", "heldout2", "heldout3"])
def test_held_out_recall_on_milvus_is_within_002_of_local(both_retrievers, milvus_real_index, held_out):
    questions = REPO / "evals" / held_out / "questions.jsonl"
    assert both_retrievers["milvus"].backend.name == "milvus"
    local, n = _recall_at_5(both_retrievers["local"], milvus_real_index, questions)
    milvus, _ = _recall_at_5(both_retrievers["milvus"], milvus_real_index, questions)
    print(f"{held_out}: {n} questions, hybrid Recall@5 local {local:.3f}, milvus {milvus:.3f}")
    assert n >= 20 and local > 0.3
    assert abs(milvus - local) <= 0.02, (held_out, local, milvus)
