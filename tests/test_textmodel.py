"""The lean model loader (indexer/textmodel.py) against SentenceTransformer, the reference, for both shipped models."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from indexer.config import DEFAULT_MODEL, TUNED_MODEL
from indexer.textmodel import NotPlain, plain_facts

pytestmark = pytest.mark.model

UNIT = "The Board is asked to note the Pharmaceutical Needs Assessment and agree the next steps. "
TEXTS = [
    "Item 6 › Screening\nThe Board noted the report. It agreed the plan.",
    "what did the board resolve on cancer screening?",
    "x",
    "  Health & Wellbeing Board, 8 March 2018  ",
    UNIT * 12,  # past the model's window
    "Recommendation 3: that the Board notes the quarterly report.",
    "SEND strategy; care leavers and council tax (2019/20), £1.2m",
] * 2
SPANS = [[(19, 46), (47, 65)], [(0, 8), (9, 47)], [], [(2, 26)], [(0, len(UNIT) - 1), (len(UNIT) * 11, len(UNIT) * 12 - 1)],
         [(0, 16), (18, 60)], [(0, 13), (15, 60)]] * 2


def _path(name):
    from indexer.embed import resolve_model_path

    return resolve_model_path(name)


_REFERENCES: dict = {}


def _reference(name):
    """SentenceTransformer as sentence-transformers loads it, float32, once per model."""
    if name not in _REFERENCES:
        import torch
        from sentence_transformers import SentenceTransformer

        _REFERENCES[name] = SentenceTransformer(_path(name), device="cpu", model_kwargs={"dtype": torch.float32})
    return _REFERENCES[name]


def _reference_spans(model, texts, spans):
    """Span vectors by hand from SentenceTransformer's own token embeddings: the mean of the tokens a span overlaps."""
    import torch

    out = []
    for text, xs in zip(texts, spans):
        features = model.tokenizer([text], truncation=True, max_length=model.max_seq_length,
                                   return_offsets_mapping=True, return_tensors="pt")
        offsets = features.pop("offset_mapping")[0].tolist()
        with torch.inference_mode():
            result = model(dict(features))
        tokens, pooled = result["token_embeddings"][0].numpy(), result["sentence_embedding"][0].numpy()
        for a, b in xs:
            inside = [i for i, (s, e) in enumerate(offsets) if e > s and s < b and e > a]
            v = tokens[inside].mean(0) if inside else pooled  # a span past the window: the text's vector
            out.append(v / np.linalg.norm(v))
    return np.asarray(out, dtype=np.float32)


@pytest.mark.parametrize("name", [DEFAULT_MODEL, TUNED_MODEL])
def test_chunk_and_span_vectors_match_sentence_transformers_fp32(name):
    from indexer.embed import SentenceTransformerEncoder

    enc = SentenceTransformerEncoder(name, precision="fp32")
    assert enc.model.kind == "bert"  # the hand-written forward pass, not a fallback
    ref = _reference(name)
    assert (enc.dim, enc.max_seq_length) == (ref.get_embedding_dimension(), ref.max_seq_length)
    expect = ref.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    bulk = enc.encode(TEXTS, batch_size=2, progress=True)  # the build's path: bucketed, several batches
    small = np.concatenate([enc.encode(TEXTS[i:i + 2]) for i in range(0, len(TEXTS), 2)])  # queries' path
    chunks, spans = enc.encode_spans(TEXTS, SPANS, batch_size=2)
    for got in (bulk, small, chunks):
        assert got.dtype == np.float32 and got.shape == expect.shape
        assert np.sum(got * expect, axis=1).min() >= 0.99999
    span_expect = _reference_spans(ref, TEXTS, SPANS)
    assert spans.shape == span_expect.shape
    assert np.sum(spans * span_expect, axis=1).min() >= 0.99999
    # The same tokens as the reference's tokenizer, so chunk sizes are measured the same way.
    assert [enc.count_tokens(t) for t in TEXTS] == [len(ref.tokenizer.encode(t, add_special_tokens=False)) for t in TEXTS]


@pytest.mark.parametrize("name", [DEFAULT_MODEL, TUNED_MODEL])
def test_bf16_vectors_match_sentence_transformers_under_the_same_autocast(name):
    import torch

    from indexer.embed import SentenceTransformerEncoder

    texts, spans = TEXTS[:4], SPANS[:4]  # bf16 is emulated on a CPU without it: short texts only
    enc = SentenceTransformerEncoder(name, precision="bf16")
    ref = _reference(name)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expect = ref.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
        span_expect = _reference_spans(ref, texts, spans)
    chunks, got_spans = enc.encode_spans(texts, spans)
    assert np.sum(chunks * expect, axis=1).min() >= 0.99999
    # The reference's spans come from one text at a time, ours from a padded batch: in bf16 the
    # different matrix shapes round differently (measured 0.999984 to 0.99999 here).
    assert np.sum(got_spans * span_expect, axis=1).min() >= 0.9999


def test_a_build_encoder_never_imports_sentence_transformers():
    code = ("import sys; from indexer.embed import load_encoder; from indexer.config import DEFAULT_MODEL;"
            "e = load_encoder(DEFAULT_MODEL); e.encode_spans(['a text. two'], [[(0, 7)]]); e.encode(['q'] * 6, progress=True);"
            "print(sorted(m for m in ('sentence_transformers', 'transformers', 'scipy', 'sklearn', 'pandas',"
            " 'accelerate', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def _copy(tmp_path, name):
    folder = tmp_path / "model"
    shutil.copytree(_path(name), folder)
    return folder


def test_another_pooling_falls_back_to_sentence_transformers(tmp_path, caplog):
    from indexer.embed import SentenceTransformerEncoder

    folder = _copy(tmp_path, DEFAULT_MODEL)
    pooling = folder / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    config.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    pooling.write_text(json.dumps(config))
    with pytest.raises(NotPlain, match="pooling"):
        plain_facts(folder)
    with caplog.at_level("INFO", logger="indexer.textmodel"):
        enc = SentenceTransformerEncoder(str(folder))
        assert enc.model.kind == "sentence-transformers"
    assert "through sentence-transformers" in caplog.text
    from sentence_transformers import SentenceTransformer

    expect = SentenceTransformer(str(folder), device="cpu").encode(TEXTS[:6], normalize_embeddings=True)
    np.testing.assert_allclose(enc.encode(TEXTS[:6], progress=True), expect, atol=1e-5)
    np.testing.assert_allclose(enc.encode(TEXTS[:2]), expect[:2], atol=1e-5)
    # The CLS vector is not the mean of the tokens: the fallback really changed the vectors.
    lean = SentenceTransformerEncoder(DEFAULT_MODEL).encode(TEXTS[:6], progress=True)
    assert np.sum(lean * expect, axis=1).min() < 0.999


def test_a_dense_layer_or_lowercasing_is_not_plain(tmp_path):
    folder = _copy(tmp_path, DEFAULT_MODEL)
    assert plain_facts(folder) == 256
    modules = json.loads((folder / "modules.json").read_text())
    (folder / "modules.json").write_text(json.dumps(modules[:2] + [{"idx": 2, "name": "2", "path": "2_Dense",
                                                                    "type": "sentence_transformers.models.Dense"}]))
    with pytest.raises(NotPlain, match="Dense"):
        plain_facts(folder)
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128, "do_lower_case": True}))
    with pytest.raises(NotPlain, match="lowercases"):
        plain_facts(folder)
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128}))
    assert plain_facts(folder) == 128
