"""Service settings: the one place in the service that reads the environment (prefix BOARDPAPERS_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from indexer.config import DEFAULT_MODEL


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BOARDPAPERS_", extra="ignore")

    index_dir: Path = Path(".index")
    model: str = DEFAULT_MODEL
    host: str = "127.0.0.1"
    port: int = 8000
    # Encode each query with onnxruntime (same vectors as PyTorch, about 3x faster); off: PyTorch.
    onnx_queries: bool = True
    # Retrieval: both retrievers contribute this many candidates to the fusion.
    candidates: int = Field(100, ge=10, le=2000)
    fusion: str = "weighted"  # "weighted" | "rrf": weighted measured better on evals/questions.jsonl
    rrf_k: int = Field(60, ge=1)
    dense_weight: float = Field(0.5, ge=0.0, le=1.0)  # dense vs BM25 within the passage scores
    # Share of the hybrid score from each passage's best sentence (the rest is BM25 + passage vector).
    sentence_weight: float = Field(0.3, ge=0.0, le=1.0)
    kind_boost: float = Field(0.2, ge=0.0, le=2.0)  # resolutions for "what did the board resolve" questions
    short_penalty: float = Field(0.2, ge=0.0, le=2.0)  # passages of under 10 words
    date_boost: float = Field(0.5, ge=0.0, le=5.0)  # how much a meeting named in the question counts
    # /ask: below this evidence score the answer says the papers don't cover the question.
    found_threshold: float = Field(0.34, ge=0.0, le=1.0)
    # Optional OpenAI-compatible chat-completions endpoint for written answers (service/llm.py).
    llm_url: str | None = None
    llm_model: str = "gpt-4o-mini"
    llm_api_key: str | None = None
    llm_timeout: float = Field(20.0, gt=0)  # seconds for the whole reply, streamed or not
    llm_context_tokens: int = Field(2500, ge=200)  # the prompt sent, in tiktoken cl100k tokens
    llm_max_tokens: int = Field(300, ge=1, le=8192)  # the reply's length limit (OpenAI `max_tokens`)
    log_level: str = "INFO"
