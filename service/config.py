"""Service settings: the one place in the service that reads the environment (prefix BOARDPAPERS_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict



class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BOARDPAPERS_", extra="ignore")

    index_dir: Path = Path(".index")
    model: str | None = None  # None: the model that built the index (its manifest says which)
    host: str = "127.0.0.1"
    port: int = 8000
    # Encode each query with onnxruntime (same vectors as PyTorch, about 3x faster); off: PyTorch.
    onnx_queries: bool = True
    # Threads each query's forward pass may use (onnxruntime, or PyTorch when it encodes queries); 0: one
    # per core. One: a 16-token query gains nothing from a second thread, and with several requests at
    # once (or anything else busy on the machine) a pool of two waits on its preempted sibling: on two
    # cores a query took 13.8 ms with onnxruntime's default pool against 6.7 ms on one thread (README "Speed").
    query_threads: int = Field(1, ge=0, le=256)
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
    # /ask: below this evidence score the answer says the papers don't cover the question. The score
    # is ask_dense_weight * (sentence vector . question vector) + ask_overlap_weight * (share of the
    # question's words in the sentence), + ask_resolution_bonus for an on-topic resolution asked
    # about, - ask_short_penalty under ask_short_words words: retune them together. All chosen on
    # evals/questions.jsonl (README, "/ask").
    found_threshold: float = Field(0.34, ge=0.0, le=1.0)
    ask_dense_weight: float = Field(0.5, ge=0.0, le=5.0)
    ask_overlap_weight: float = Field(0.2, ge=0.0, le=5.0)
    ask_resolution_bonus: float = Field(0.15, ge=0.0, le=5.0)
    ask_short_penalty: float = Field(0.1, ge=0.0, le=5.0)
    ask_short_words: int = Field(8, ge=0, le=100)
    # Sentences come from the top ask_passages passages (the right one is in the top 8 more often
    # than in the top 5); decision questions also get the ask_decision_records best decision records.
    ask_passages: int = Field(8, ge=1, le=50)
    ask_decision_records: int = Field(2, ge=0, le=20)
    # Up to ask_max_quotes within ask_quote_margin of the best are quoted, ordered with their
    # passage's retrieval score too (ask_passage_weight; not part of the evidence score).
    ask_max_quotes: int = Field(4, ge=1, le=20)
    ask_quote_margin: float = Field(0.2, ge=0.0, le=5.0)
    ask_passage_weight: float = Field(0.2, ge=0.0, le=5.0)
    # The trained judge (service/judge.py; `make judge`): a folder with judge.json and judge.npz.
    # Unset or missing: the scorer above decides. judge_threshold is a calibrated probability that
    # the best quote answers the question (calibrated on the dev split); between judge_unsure and it
    # the answer shows the closest quotes flagged as unsure instead of a flat decline.
    judge_dir: Path | None = None  # None: models/judge/ in the checkout
    use_judge: bool = True  # off: the scorer above decides (to measure what the judge is worth)
    # Chosen on the dev split (evals/train/dev_*): 0.35 gave the best evidence + declined there
    # (0.55 / 0.68); below 0.15 the closest quotes are not worth showing.
    judge_threshold: float = Field(0.35, ge=0.0, le=1.0)
    judge_unsure: float = Field(0.15, ge=0.0, le=1.0)
    # Quotes within this probability of the best: 0.5 on dev put the evidence among the quotes of 75.6%
    # of answerable questions (0.3: 71.0%) at the same declines, 2.6 quotes an answer (0.3: 1.9).
    judge_quote_margin: float = Field(0.5, ge=0.0, le=1.0)
    # The named checks of service/answer/checks.py (and the selection switches) that are on.
    ask_checks: str = "council,period,figure"
    # Optional OpenAI-compatible chat-completions endpoint for written answers (service/llm.py).
    llm_url: str | None = None
    llm_model: str = "gpt-4o-mini"
    llm_api_key: str | None = None
    llm_timeout: float = Field(20.0, gt=0)  # seconds for the whole reply, streamed or not
    llm_context_tokens: int = Field(2500, ge=200)  # the prompt sent, in tiktoken cl100k tokens
    llm_max_tokens: int = Field(300, ge=1, le=8192)  # the reply's length limit (OpenAI `max_tokens`)
    # Where /search ranks chunks (indexer/backends/): "local" (the index folder's FAISS and bm25s
    # files) or "milvus" (the collection the index was published to; README, "Running it big").
    backend: str = "local"
    milvus_uri: str | None = None
    milvus_token: str | None = None
    log_level: str = "INFO"
    log_format: str = Field("json", pattern="^(json|text)$")  # json: one JSON object a line (service/logs.py)
    # Operations (README, "Operations"). Admin routes (POST /admin/reload) exist only when a token is
    # set; callers send it as `Authorization: Bearer <token>`.
    admin_token: str | None = Field(None, min_length=1)
    # Seconds between looks at the index's `current` link; a new build is loaded by itself. 0: off.
    # With it on, the service may start before the first build (not ready until one loads).
    watch_index: float = Field(0.0, ge=0.0, le=3600.0)
    # Request bodies over this many bytes are refused with 413 before they are parsed. 256 KiB holds
    # a question with the full allowed history (schemas.MAX_HISTORY_TURNS turns of capped answers).
    max_body_bytes: int = Field(256 * 1024, ge=1024, le=64 * 1024 * 1024)

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        from indexer.backends.base import check_backend

        return check_backend(value)

    def enabled_checks(self) -> frozenset[str]:
        """The ask_checks names, each known (a typo is an error at start, not a silent no-op)."""
        from service.answer.checks import CHECKS, SWITCHES

        names = frozenset(n.strip() for n in self.ask_checks.split(",") if n.strip())
        unknown = names - set(CHECKS) - set(SWITCHES)
        if unknown:
            raise ValueError(f"unknown /ask check(s) {sorted(unknown)}: use any of {[*SWITCHES, *CHECKS]}")
        return names
