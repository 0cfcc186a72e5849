"""Span vectors from a text's own forward pass (encode_spans), and the single-query tokenizer path."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.config import DEFAULT_MODEL
from indexer.embed import HashingEncoder, _token_ranges, can_pool

TEXT = "Item 6 › Screening\nThe Board noted the report. It agreed the plan."

_ST = []


def _reference(texts):
    """sentence-transformers' own vectors of texts, the reference our encoder must reproduce."""
    if not _ST:
        import torch
        from sentence_transformers import SentenceTransformer

        from indexer.embed import resolve_model_path

        _ST.append(SentenceTransformer(resolve_model_path(DEFAULT_MODEL), device="cpu", model_kwargs={"dtype": torch.float32}))
    return np.asarray(_ST[0].encode(list(texts), normalize_embeddings=True, convert_to_numpy=True))



def test_token_ranges_by_hand():
    # [CLS] "the"(0,3) "board"(4,9) "noted"(10,15) "."(15,16) "it"(17,19) "agreed"(20,26) [SEP]
    offsets = [(0, 0), (0, 3), (4, 9), (10, 15), (15, 16), (17, 19), (20, 26), (0, 0)]
    lo, hi = _token_ranges(offsets, [(0, 16), (17, 26), (16, 17), (4, 12)])
    assert lo.tolist() == [1, 5, 5, 2]
    # A span of whitespace alone holds no token; a span cutting a word takes in the whole word.
    assert hi.tolist() == [5, 7, 5, 4]


def test_token_ranges_of_a_text_with_no_tokens():
    lo, hi = _token_ranges([(0, 0), (0, 0)], [(0, 3)])
    assert lo.tolist() == hi.tolist() == [0]


def test_only_the_torch_variant_and_the_test_encoder_pool():
    assert can_pool("torch") and can_pool(HashingEncoder())
    assert not can_pool("onnx") and not can_pool("onnx-int8")

    class Elsewhere:  # an encoder with no encode_spans, as the Ray build's
        variant = "torch"

    assert not can_pool(Elsewhere())


@pytest.fixture(scope="module")
def encoder():
    from indexer.embed import load_encoder

    return load_encoder(DEFAULT_MODEL)


@pytest.mark.model
def test_span_vectors_are_the_mean_of_their_tokens_in_the_whole_text(encoder):
    import torch

    unit = "The Board is asked to note the Pharmaceutical Needs Assessment. "
    texts = [TEXT, "A short one.", unit * 30]
    spans = [[(19, 46), (47, 65)], [], [(0, len(unit) - 1), (len(unit) * 29, len(unit) * 30 - 1)]]
    vectors, span_vectors = encoder.encode_spans(texts, spans, batch_size=2)
    reference = _reference(texts)
    np.testing.assert_allclose(vectors, reference, atol=1e-5)
    assert span_vectors.shape == (4, encoder.dim)

    # By hand from sentence-transformers' own token embeddings of the first text.
    features = _ST[0].tokenizer([TEXT], return_offsets_mapping=True, return_tensors="pt")
    offsets = features.pop("offset_mapping")[0].tolist()
    with torch.inference_mode():
        tokens = _ST[0](dict(features))["token_embeddings"][0].numpy()
    for (a, b), got in zip(spans[0], span_vectors[:2]):
        inside = [i for i, (s, e) in enumerate(offsets) if e > s and s < b and e > a]
        expect = tokens[inside].mean(0)
        np.testing.assert_allclose(got, expect / np.linalg.norm(expect), atol=1e-5)
    # The long text was cut at the model's window: a span past it has the text's own vector.
    np.testing.assert_allclose(span_vectors[3], vectors[2], atol=1e-6)
    assert float(span_vectors[2] @ vectors[2]) < 0.9999


@pytest.mark.model
def test_a_lead_is_pooled_into_every_span(encoder):
    _, plain = encoder.encode_spans([TEXT], [[(19, 46)]])
    _, led = encoder.encode_spans([TEXT], [[(19, 46)]], leads=[18])
    assert float(plain[0] @ led[0]) < 0.999
    np.testing.assert_allclose(np.linalg.norm(led, axis=1), 1.0, atol=1e-5)


@pytest.mark.model
@pytest.mark.parametrize("text", ["what did the board resolve on cancer screening?", "x",
                                  "The Board is asked to note the Needs Assessment. " * 40])
def test_a_single_query_on_the_onnx_path_matches_model_encode(text):
    from indexer.embed import SentenceTransformerEncoder

    enc = SentenceTransformerEncoder(DEFAULT_MODEL)
    assert enc.enable_onnx() and enc._query_tokenizer is not None
    reference = _reference([text])
    np.testing.assert_allclose(enc.encode([text]), reference, atol=1e-5)


def test_precision_is_fp32_or_bf16_and_unknown_ones_are_refused():
    from indexer.embed import resolve_precision

    assert resolve_precision("fp32") == "fp32" and resolve_precision("bf16") == "bf16"
    assert resolve_precision("auto") in ("fp32", "bf16")
    with pytest.raises(ValueError, match="unknown encoder precision"):
        resolve_precision("fp8")


@pytest.mark.model
def test_bf16_bulk_vectors_stay_close_to_fp32_and_queries_stay_fp32():
    from indexer.embed import SentenceTransformerEncoder

    texts = [TEXT, "what did the board resolve on cancer screening?"] * 4 + ["Needs Assessment. " * 60]
    fp32 = SentenceTransformerEncoder(DEFAULT_MODEL, precision="fp32")
    bf16 = SentenceTransformerEncoder(DEFAULT_MODEL, precision="bf16")
    a, b = fp32.encode(texts, progress=True), bf16.encode(texts, progress=True)
    assert float(np.min(np.sum(a * b, axis=1))) > 0.999
    _, spans = bf16.encode_spans([TEXT], [[(19, 46)]])
    _, ref = fp32.encode_spans([TEXT], [[(19, 46)]])
    assert float(spans[0] @ ref[0]) > 0.999
    np.testing.assert_allclose(bf16.encode(texts[:1]), fp32.encode(texts[:1]), atol=1e-6)  # a query: fp32
