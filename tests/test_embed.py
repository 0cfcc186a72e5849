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


@pytest.mark.model
@pytest.mark.parametrize("n", [1, 2, 4, 5, 6])
def test_small_batches_match_model_encode(n):
    from indexer.embed import load_encoder

    enc = load_encoder(DEFAULT_MODEL)
    ours = enc.encode(TEXTS[:n])
    reference = np.asarray(enc.model.encode(TEXTS[:n], normalize_embeddings=True, convert_to_numpy=True))
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
    reference = np.asarray(enc.model.encode(TEXTS[:n], normalize_embeddings=True, convert_to_numpy=True))
    assert ours.shape == (n, enc.dim) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference, atol=1e-5)


@pytest.mark.model
def test_model_that_cannot_be_exported_keeps_pytorch(monkeypatch):
    from indexer import embed

    enc = embed.SentenceTransformerEncoder(DEFAULT_MODEL)

    def refuse(model):
        raise embed.EncoderError("not exportable")

    monkeypatch.setattr(embed, "_export_onnx", refuse)
    assert enc.enable_onnx() is False and not enc.onnx_enabled
    reference = np.asarray(enc.model.encode(TEXTS[:1], normalize_embeddings=True, convert_to_numpy=True))
    np.testing.assert_allclose(enc.encode(TEXTS[:1]), reference, atol=1e-5)
