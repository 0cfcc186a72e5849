"""The service encodes queries the way the index's vectors were made (the manifest's variant)."""

from __future__ import annotations

import numpy as np
import pytest

from service_fixtures import app_client  # noqa: F401

pytestmark = pytest.mark.model


def test_service_encodes_queries_with_the_index_variant(app_client, real_index):  # noqa: F811
    from indexer.store import encoder_cache_dir, read_manifest

    manifest = read_manifest(real_index)
    variant = manifest["model"].get("variant", "torch")  # indexes from before variants were PyTorch
    assert variant in ("torch", "onnx", "onnx-int8")
    encoder = app_client.app.state.services.encoder
    assert encoder.variant == variant and encoder.onnx_enabled
    if variant != "torch":
        # The export the build cached beside the index is the one the service runs.
        assert any(p.suffix == ".onnx" and variant in p.name for p in encoder_cache_dir(real_index).iterdir())
    # A passage's own text, asked as a query, finds that passage first: query and passage vectors agree.
    index = app_client.app.state.services.index
    row = len(index.chunks) // 2
    query = encoder.encode([index.chunks[row].embed_text])
    # int8's activation scales are set per batch, so a text's vector moves a little with its batch.
    assert float(query[0] @ index.vectors[row]) > (0.98 if variant == "onnx-int8" else 0.999)
    best = int(np.argmax(index.vectors @ query[0]))
    assert index.chunks[best].embed_text == index.chunks[row].embed_text
