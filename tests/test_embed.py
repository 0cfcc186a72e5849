"""The encoder's single-query fast path gives the same vectors as sentence-transformers' encode."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.config import DEFAULT_MODEL

TEXTS = [
    "what did the board resolve on cancer screening?",
    "Health & Wellbeing Board, 8 March 2018",
    "x",
    "The Board is asked to note the Pharmaceutical Needs Assessment. " * 30,  # longer than the model's window
    "SEND strategy",
    "care leavers and council tax",
]

_ST = []


def _reference(texts):
    """sentence-transformers' own vectors of texts, the reference our encoder must reproduce."""
    if not _ST:
        import torch
        from sentence_transformers import SentenceTransformer

        from indexer.embed import resolve_model_path

        _ST.append(SentenceTransformer(resolve_model_path(DEFAULT_MODEL), device="cpu", model_kwargs={"dtype": torch.float32}))
    return np.asarray(_ST[0].encode(list(texts), normalize_embeddings=True, convert_to_numpy=True))



@pytest.mark.model
@pytest.mark.parametrize("n", [1, 2, 4, 5, 6])
def test_small_batches_match_model_encode(n):
    from indexer.embed import load_encoder

    enc = load_encoder(DEFAULT_MODEL)
    ours = enc.encode(TEXTS[:n])
    reference = _reference(TEXTS[:n])
    assert ours.shape == (n, enc.dim) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


@pytest.mark.model
@pytest.mark.parametrize("n", [1, 2, 4])
def test_onnx_fast_path_matches_model_encode(n):
    from indexer.embed import SentenceTransformerEncoder

    enc = SentenceTransformerEncoder(DEFAULT_MODEL)
    assert enc.enable_onnx() and enc.onnx_enabled
    ours = enc.encode(TEXTS[:n])
    reference = _reference(TEXTS[:n])
    assert ours.shape == (n, enc.dim) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference, atol=1e-5)


@pytest.mark.model
@pytest.mark.parametrize("threads", [0, 1, 2])
def test_query_session_takes_the_thread_cap(monkeypatch, threads):
    # The service encodes each query on one thread by default (BOARDPAPERS_QUERY_THREADS): the cap must
    # reach the session's options, since onnxruntime's own default is a pool of one thread per core.
    from indexer import embed

    seen = []
    real = embed._session_options
    monkeypatch.setattr(embed, "_session_options", lambda t, arena=False: seen.append(t) or real(t, arena))
    enc = embed.SentenceTransformerEncoder(DEFAULT_MODEL, threads=threads)
    assert enc.enable_onnx()
    assert seen == [threads]
    np.testing.assert_allclose(np.linalg.norm(enc.encode(TEXTS[:1]), axis=1), 1.0, atol=1e-5)


@pytest.mark.model
def test_model_that_cannot_be_exported_keeps_pytorch(monkeypatch):
    from indexer import embed

    enc = embed.SentenceTransformerEncoder(DEFAULT_MODEL)

    def refuse(model, threads=0):
        raise embed.EncoderError("not exportable")

    monkeypatch.setattr(embed, "_export_onnx", refuse)
    assert enc.enable_onnx() is False and not enc.onnx_enabled
    reference = _reference(TEXTS[:1])
    np.testing.assert_allclose(enc.encode(TEXTS[:1]), reference, atol=1e-5)


# Texts of very different token lengths, more than one bucketed batch at batch_size=2.
MIXED = TEXTS + [f"Recommendation {n}: that the Board notes the {w} report." for n, w in
                 enumerate(["annual", "quarterly", "joint"])] + [TEXTS[3][:600], TEXTS[3][:300]]


@pytest.fixture(scope="module")
def torch_encoder():
    from indexer.embed import load_encoder

    return load_encoder(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def export_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("encoders")


@pytest.mark.model
@pytest.mark.parametrize("variant, least", [("onnx", 0.9999), ("onnx-int8", 0.97)])
def test_onnx_variants_bucket_and_restore_order(variant, least, torch_encoder, export_cache):
    from indexer.embed import load_encoder

    enc = load_encoder(DEFAULT_MODEL, variant, export_cache, threads=1)
    assert enc.variant == variant and enc.dim == torch_encoder.dim and enc.max_tokens == torch_encoder.max_tokens
    reference = torch_encoder.encode(MIXED, batch_size=32, progress=True)
    ours = enc.encode(MIXED, batch_size=2)
    assert ours.shape == reference.shape and ours.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-4)
    cosines = np.sum(ours * reference, axis=1)
    assert cosines.min() >= least, cosines
    # Each row is its own text's vector, whatever batch it was sorted into.
    assert np.array_equal(np.argmax(ours @ reference.T, axis=1), np.arange(len(MIXED)))
    # One text alone gets the vector it got in a batch (padding does not leak into the mean).
    np.testing.assert_allclose(enc.encode([MIXED[2]])[0], ours[2], atol=1e-4)
    assert [enc.count_tokens(t) for t in MIXED] == [torch_encoder.count_tokens(t) for t in MIXED]


@pytest.mark.model
def test_cached_export_loads_without_pytorch(torch_encoder, export_cache):
    from indexer.embed import SentenceTransformerEncoder

    first = SentenceTransformerEncoder(DEFAULT_MODEL, variant="onnx-int8", cache_dir=export_cache)
    files = sorted(p.name for p in export_cache.iterdir())
    assert any(f.endswith(".onnx") and "onnx-int8" in f for f in files)
    assert not [f for f in files if f.startswith(".export-")]  # the work folder is cleaned up
    again = SentenceTransformerEncoder(DEFAULT_MODEL, variant="onnx-int8", cache_dir=export_cache)
    assert again._model is None  # the cached file and its facts were enough: PyTorch never loaded
    np.testing.assert_allclose(again.encode(TEXTS), first.encode(TEXTS), atol=1e-6)


def test_unknown_variant_is_refused():
    from indexer.embed import SentenceTransformerEncoder

    with pytest.raises(ValueError, match="unknown encoder variant"):
        SentenceTransformerEncoder(DEFAULT_MODEL, variant="fp16")
