"""Hybrid scoring internals on the tiny corpus with the hashing encoder: best sentence, priors."""

from __future__ import annotations

import numpy as np
import pytest

from indexer import pipeline, store
from service.question import wants
from service.retrieve import Retriever


@pytest.fixture
def tiny_index(tiny_corpus, settings_for, fake_encoder):
    settings = settings_for(tiny_corpus)
    pipeline.build(settings, encoder=fake_encoder)
    return store.load_index(settings.index_dir)


def _retriever(index, encoder, **kw) -> Retriever:
    return Retriever(index, encoder, fusion="weighted", **kw)


def test_best_sentence_score_is_the_max_over_the_passages_sentences(tiny_index, fake_encoder):
    r = _retriever(tiny_index, fake_encoder, sentence_weight=0.3)
    qv = fake_encoder.encode(["uptake of bowel screening"])[0]
    rows = list(range(len(tiny_index.chunks)))
    got = dict(r._best_sentences(rows, qv))
    for row in rows:
        ids = list(r.sentences_of(row))
        expect = max(float(tiny_index.sentence_vectors[i] @ qv) for i in ids)
        assert got[row] == pytest.approx(expect, abs=1e-6)
    ranked = r._best_sentences(rows, qv)
    assert [s for _, s in ranked] == sorted((s for _, s in ranked), reverse=True)


def test_sentence_weight_can_only_reorder_the_same_candidates(tiny_index, fake_encoder):
    q = "bowel screening uptake below the national target"
    plain = _retriever(tiny_index, fake_encoder).search(q, k=50)
    with_sentences = _retriever(tiny_index, fake_encoder, sentence_weight=0.5).search(q, k=50)
    assert {h.row for h in plain} == {h.row for h in with_sentences}


def test_resolution_question_lifts_the_resolution(tiny_index, fake_encoder):
    q = "what did the board resolve on screening?"
    res_rows = [i for i, c in enumerate(tiny_index.chunks) if c.kind == "resolution"]
    assert res_rows, "the tiny pack has a resolution"

    def rank_of_resolution(**kw):
        hits = _retriever(tiny_index, fake_encoder, **kw).search(q, k=50)
        return min(i for i, h in enumerate(hits) if h.row in res_rows)

    assert rank_of_resolution(kind_boost=2.0) == 0
    assert rank_of_resolution(kind_boost=2.0) <= rank_of_resolution()


def test_short_passages_sink(tiny_index, fake_encoder):
    q = "decisions of the health and wellbeing board screening"
    short = {i for i, c in enumerate(tiny_index.chunks) if len(c.text.split()) < 10}
    assert short, "the tiny pack has a heading-sized passage"
    hits = _retriever(tiny_index, fake_encoder, short_penalty=2.0).search(q, k=50)
    ranks = [i for i, h in enumerate(hits) if h.row in short]
    others = [i for i, h in enumerate(hits) if h.row not in short]
    assert ranks and others and min(ranks) > max(others)


@pytest.mark.parametrize("question, want", [
    ("what did the board resolve on cancer screening?", "decision"),
    ("has the board endorsed a SEND strategy before?", "decision"),
    ("what was the outcome of the Fit and Active Barnet item?", "decision"),
    ("what was the board asked to agree on the PNA?", "proposal"),
    ("what was recommended on the LSCB working agreement?", "proposal"),
    ("how many schools signed up to Resilient Schools?", None),
])
def test_question_intent(question, want):
    assert wants(question) == want
