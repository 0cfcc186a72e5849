"""python -m indexer build --ray: parsing and embedding on a local Ray, the same records as the local build."""

from __future__ import annotations

import numpy as np
import pytest

from indexer import pipeline, store

pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    import ray

    from indexer.distributed import _init_ray

    _init_ray()
    yield
    ray.shutdown()


def test_ray_build_gives_the_local_build_s_chunks_and_vectors(tiny_corpus, settings_for, tmp_path, local_ray):
    from indexer.distributed import build as ray_build

    local_settings = settings_for(tiny_corpus, index_dir=tmp_path / "local-index")
    ray_settings = settings_for(tiny_corpus, index_dir=tmp_path / "ray-index")
    pipeline.build(local_settings)
    report = ray_build(ray_settings, actors=2)
    local, on_ray = store.load_index(local_settings.index_dir), store.load_index(ray_settings.index_dir)
    assert report.chunks == len(local.chunks) > 5 and report.embedded == len(local.chunks)
    assert [(c.id, c.text) for c in on_ray.chunks] == [(c.id, c.text) for c in local.chunks]
    assert on_ray.chunks == local.chunks and on_ray.decisions == local.decisions
    assert np.allclose(on_ray.vectors, local.vectors, atol=1e-6)
    assert np.allclose(on_ray.sentence_vectors, local.sentence_vectors, atol=1e-6)
    assert [s.content_hash for s in on_ray.sentences] == [s.content_hash for s in local.sentences]


def test_cli_build_ray_then_an_unchanged_corpus_parses_and_embeds_nothing(tiny_corpus, settings_for, capsys,
                                                                         monkeypatch, local_ray):
    from indexer.__main__ import main

    settings = settings_for(tiny_corpus)
    monkeypatch.setenv("BOARDPAPERS_MODEL", "fake-hashing-64")
    argv = ["build", str(settings.corpus_dir), "--index", str(settings.index_dir), "--no-progress", "--ray"]
    assert main(argv) == 0
    assert "indexed 3 documents" in capsys.readouterr().out
    assert len(store.load_index(settings.index_dir).chunks) > 5
    assert main(argv) == 0
    assert "is up to date" in capsys.readouterr().out


def test_the_ray_encoder_keeps_its_actors_the_driver_s_precision_and_every_row_in_place(tmp_path, local_ray):
    from indexer.distributed import RayEncoder
    from indexer.embed import HashingEncoder

    local = HashingEncoder(64)
    local.precision = "bf16"  # as the PyTorch encoder on a CPU with bf16: the manifest records the driver's
    enc = RayEncoder(local, actors=2, rows_per_unit=3, cache_dir=tmp_path)
    assert enc.precision == "bf16"
    texts = [f"{'bowel screening uptake ' * (i % 7)}item {i}" for i in range(20)]  # lengths out of order
    try:
        first = enc.encode(texts, batch_size=2)
        actors = list(enc._pool)
        again = enc.encode(texts[::-1], batch_size=2)
        assert enc._pool == actors and len(actors) == 2  # one pool for the build: the model loaded once per actor
    finally:
        enc.close()
    assert np.allclose(first, HashingEncoder(64).encode(texts), atol=1e-6)
    assert np.allclose(again, first[::-1], atol=1e-6)
