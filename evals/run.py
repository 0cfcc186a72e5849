"""Evaluation runners: retrieval over our question set, /ask answers, decision extraction, public benchmarks.

The scoring core never needs a model: it takes a plain ``search(question, k) -> list[str]``
callable returning passage texts, best first. Adapters below turn the in-process Retriever or a
running service (HTTP) into such callables.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

for _name in ("DO_NOT_TRACK", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "UNSTRUCTURED_DISABLE_NOTICE"):
    os.environ.setdefault(_name, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from evals.metrics import METRICS, from_first_ranks, from_graded_run  # noqa: E402
from evals.questions import Question, Unanswerable  # noqa: E402
from evals.relevance import first_relevant_rank, is_relevant, relevant_any  # noqa: E402

SearchFn = Callable[[str, int], list[str]]
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


# ================================================================ retrieval over our questions


@dataclass
class RetrieverResult:
    name: str
    ranks: dict[str, int | None]
    kinds: dict[str, str]
    latencies_ms: list[float]
    metrics: dict[str, float] = field(default_factory=dict)
    per_kind: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_json(self) -> dict:
        return {
            **self.metrics,
            "n": len(self.ranks),
            "per_kind": self.per_kind,
            "latency_ms_p50": percentile(self.latencies_ms, 50),
            "latency_ms_p95": percentile(self.latencies_ms, 95),
        }


def percentile(values: Sequence[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    # nearest-rank on a linear interpolation, as numpy's default
    pos = (len(s) - 1) * p / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return round(s[lo] + (s[hi] - s[lo]) * (pos - lo), 3)


def score_questions(name: str, questions: Sequence[Question], search: SearchFn, k: int = 10) -> RetrieverResult:
    """Search every question, find the rank of its first relevant passage, compute metrics."""
    ranks: dict[str, int | None] = {}
    kinds: dict[str, str] = {}
    lat: list[float] = []
    for q in questions:
        t0 = time.perf_counter()
        # A follow-up is searched with the question it leans on, as /ask reads it (service/question.py).
        text = f"{q.question} {q.history[-1]}" if q.history else q.question
        passages = list(search(text, k))[:k]
        lat.append((time.perf_counter() - t0) * 1000)
        ranks[q.id] = first_relevant_rank(passages, q.evidence) if passages else None
        kinds[q.id] = q.kind
    res = RetrieverResult(name, ranks, kinds, lat)
    res.metrics = from_first_ranks(ranks, METRICS)
    for kind in sorted(set(kinds.values())):
        sub = {qid: r for qid, r in ranks.items() if kinds[qid] == kind}
        res.per_kind[kind] = {**from_first_ranks(sub, METRICS), "n": len(sub)}
    return res


def recall_curve(ranks: Mapping[str, int | None], kmax: int = 10) -> list[float]:
    n = len(ranks)
    return [sum(1 for r in ranks.values() if r is not None and r <= k) / n for k in range(1, kmax + 1)]


def plot_recall(results: Sequence[RetrieverResult], path: Path, kmax: int = 10) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    xs = list(range(1, kmax + 1))
    for r in results:
        ax.plot(xs, recall_curve(r.ranks, kmax), marker="o", label=r.name)
    ax.set_xlabel("k")
    ax.set_ylabel("recall@k (share of questions with evidence in top k)")
    ax.set_xticks(xs)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run_eval(questions: Sequence[Question], searches: Mapping[str, SearchFn], out: Path, k: int = 10,
             plot: bool = True, source: str = "") -> dict:
    """Score each search function over the questions; write metrics.json, report.md (and the plot)."""
    from evals import report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = [score_questions(name, questions, fn, k) for name, fn in searches.items()]
    metrics = {r.name: r.as_json() for r in results}
    _write_json(out / "metrics.json", metrics)
    _write_json(out / "ranks.json", {r.name: r.ranks for r in results})
    plot_path = plot_recall(results, out / "recall_at_k.png", min(k, 10)) if plot else None
    (out / "report.md").write_text(report.run_report(metrics, questions, results, plot_path, source), encoding="utf-8")
    return metrics


def held_by_index(questions: Sequence[Question], index_dir: Path) -> list[Question]:
    """The questions about papers the index holds; the rest (the Kent PDFs' questions against an index
    of the bundled corpus) are left out, and the count is said, rather than scored as misses."""
    from indexer.store import read_manifest

    manifest = read_manifest(Path(index_dir)) or {}
    docs = set(manifest.get("documents", {})) or None
    if docs is None:
        return list(questions)
    kept = [q for q in questions if q.doc in docs]
    if len(kept) < len(questions):
        import sys

        print(f"{len(questions) - len(kept)} of {len(questions)} questions are about papers not in {index_dir}: "
              "left out", file=sys.stderr)
    return kept


# ---------------------------------------------------------------- adapters


def load_encoder(model: str = DEFAULT_MODEL, index=None):
    """The model, run as it ran for index (its manifest's variant) when one is given."""
    from indexer.embed import load_encoder as _load
    from indexer.store import encoder_cache_dir

    if index is None:
        return _load(model)
    return _load(model, index.manifest["model"].get("variant", "torch"), encoder_cache_dir(index.path.parent.parent))


def _retriever_factory(index_dir: Path, model: str | None = None):
    """Retrievers over one loaded index and encoder, configured as the service configures them."""
    from indexer.store import load_index
    from service.config import ServiceSettings
    from service.retrieve import Retriever

    s = ServiceSettings(index_dir=index_dir)
    index = load_index(Path(index_dir))
    encoder = load_encoder(model or index.manifest["model"]["name"], index)
    return lambda **overrides: Retriever.from_settings(index, encoder, s, **overrides)


def retriever_searches(index_dir: Path, names: Sequence[str], model: str | None = None) -> dict[str, SearchFn]:
    """In-process search functions over an index, configured as the service configures them.

    "reranked" is the hybrid search with the trained judge reordering its top 20, as
    `/search?rerank=true` does.
    """
    if "reranked" in names:
        from service.reload import build_services
        from service.config import ServiceSettings
        from service.routes.search import RERANK_DEPTH

        svc = build_services(ServiceSettings(index_dir=index_dir, model=model))
        if svc.answerer.judge is None:
            raise ValueError(f"no judge matches the index at {index_dir}: train one (make judge) to measure 'reranked'")
        retriever = svc.retriever

        def reranked(q: str, k: int) -> list[str]:
            return [h.chunk.text for h in svc.answerer.search_reranked(q, k, depth=RERANK_DEPTH)]
    else:
        retriever = _retriever_factory(index_dir, model)()

    def make(mode: str) -> SearchFn:
        if mode == "reranked":
            return reranked
        return lambda q, k: [h.chunk.text for h in retriever.search(q, k, mode=mode)]

    return {name: make(name) for name in names}


# Each variant is the service's hybrid with one part switched off (or swapped), so every part of
# the ranking is justified by what removing it costs on the same questions.
ABLATIONS: dict[str, dict] = {
    "hybrid (service default)": {},
    "without best-sentence score": {"sentence_weight": 0.0},
    "without intent prior": {"kind_boost": 0.0},
    "without short-passage penalty": {"short_penalty": 0.0},
    "without meeting/council boost": {"date_boost": 0.0},
    "passage scores only (BM25 + passage vector)": {"sentence_weight": 0.0, "kind_boost": 0.0, "short_penalty": 0.0},
    "RRF instead of weighted fusion": {"fusion": "rrf"},
}


def ablation_searches(index_dir: Path, model: str | None = None) -> dict[str, SearchFn]:
    """The hybrid search with each of its parts removed in turn (see ABLATIONS)."""
    new_retriever = _retriever_factory(index_dir, model)

    def make(overrides: dict) -> SearchFn:
        retriever = new_retriever(**overrides)
        return lambda q, k: [h.chunk.text for h in retriever.search(q, k, mode="hybrid")]

    return {name: make(o) for name, o in ABLATIONS.items()}


def http_search(url: str, timeout: float = 60.0) -> SearchFn:
    import httpx

    client = httpx.Client(base_url=url.rstrip("/"), timeout=timeout)

    def search(q: str, k: int) -> list[str]:
        r = client.post("/search", json={"query": q, "k": k})
        r.raise_for_status()
        return [res["text"] for res in r.json()["results"]]

    return search


# ================================================================ /ask


@dataclass
class AskOutcome:
    id: str
    question: str
    answerable: bool
    found: bool
    with_evidence: bool
    answer: str
    citations: list[dict]
    reason: str | None = None  # why /ask declined, when it did
    answerer: str = "extractive"  # which answerer wrote the answer: "extractive" or "llm"
    trap: str | None = None  # for an unanswerable question: what makes it look answerable
    confidence: float | None = None  # the judge's, when one answered


def score_ask(questions: Sequence[Question], unanswerable: Sequence[Unanswerable],
              ask: Callable[[str, Sequence[str]], dict], span_text: Callable[[str, int, int], str | None]) -> tuple[dict, list[AskOutcome], list[dict]]:
    """Score /ask responses (dicts shaped like AskResponse).

    Returns (metrics, per-question outcomes, non-verbatim quotes).
    """
    outcomes: list[AskOutcome] = []
    bad_quotes: list[dict] = []

    def check(qid: str, resp: dict) -> list[tuple[str, str | None]]:
        spans = []
        for c in resp.get("citations", []):
            doc_text = span_text(c["document_id"], c["char_start"], c["char_end"])
            if doc_text is None or doc_text != c["quote"]:
                bad_quotes.append({"question": qid, "n": c.get("n"), "document_id": c["document_id"],
                                   "char_start": c["char_start"], "char_end": c["char_end"],
                                   "quote": c["quote"], "document_text": doc_text})
            spans.append((c["quote"], doc_text))
        return spans

    for q in questions:
        resp = ask(q.question, q.history)
        spans = check(q.id, resp)
        found = bool(resp.get("found"))
        evid = found and any(relevant_any(quote, q.evidence) or (text is not None and relevant_any(text, q.evidence))
                             for quote, text in spans)
        outcomes.append(AskOutcome(q.id, q.question, True, found, evid, resp.get("answer", ""), resp.get("citations", []),
                                   resp.get("reason"), resp.get("answerer", "extractive"), None, resp.get("confidence")))
    for u in unanswerable:
        resp = ask(u.question, u.history)
        check(u.id, resp)
        outcomes.append(AskOutcome(u.id, u.question, False, bool(resp.get("found")), False,
                                   resp.get("answer", ""), resp.get("citations", []), resp.get("reason"),
                                   resp.get("answerer", "extractive"), u.trap, resp.get("confidence")))
    ans = [o for o in outcomes if o.answerable]
    una = [o for o in outcomes if not o.answerable]
    n_cit = sum(len(o.citations) for o in outcomes)
    metrics = {
        "answered_with_evidence": sum(o.with_evidence for o in ans) / len(ans) if ans else None,
        "answered_found": sum(o.found for o in ans) / len(ans) if ans else None,
        "declined_unanswerable": sum(not o.found for o in una) / len(una) if una else None,
        # Near-topic: unanswerable questions whose set says what makes them look answerable, other than off-topic.
        "declined_near_topic": (sum(not o.found for o in near) / len(near)) if (near := [
            o for o in una if o.trap and o.trap != "off_topic"]) else None,
        "n_near_topic": len(near),
        "unsure": sum(o.reason == "unsure" for o in outcomes),
        "non_verbatim_quotes": len(bad_quotes),
        "n_citations": n_cit,
        # Answers the LLM wrote (the rest are extractive: declines, and any LLM reply that fell back).
        "llm_answers": sum(o.answerer == "llm" for o in outcomes),
        "n_answerable": len(ans),
        "n_unanswerable": len(una),
    }
    return metrics, outcomes, bad_quotes


def run_ask(questions, unanswerable, out: Path, index_dir: Path | None = None, url: str | None = None) -> dict:
    from evals import report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if url:
        import httpx

        client = httpx.Client(base_url=url.rstrip("/"), timeout=120.0)
        ctx = None
    else:
        from fastapi.testclient import TestClient

        from service.app import create_app
        from service.config import ServiceSettings

        ctx = TestClient(create_app(ServiceSettings(index_dir=index_dir)))
        client = ctx.__enter__()
    try:
        def ask(question: str, history: Sequence[str] = ()) -> dict:
            r = client.post("/ask", json={"question": question, "history": [{"question": h} for h in history]})
            r.raise_for_status()
            return r.json()

        def span_text(doc_id: str, start: int, end: int) -> str | None:
            r = client.get(f"/documents/{doc_id}/text", params={"start": start, "end": end, "context": 0})
            return r.json()["text"] if r.status_code == 200 else None

        metrics, outcomes, bad = score_ask(questions, unanswerable, ask, span_text)
    finally:
        if ctx is not None:
            ctx.__exit__(None, None, None)
    result = {"ask": metrics}
    _write_json(out / "metrics.json", result)
    _write_json(out / "outcomes.json", [o.__dict__ for o in outcomes])
    (out / "report.md").write_text(report.ask_report(metrics, outcomes, bad, url or str(index_dir)), encoding="utf-8")
    return result


# ================================================================ decisions


def gold_matches(gold: Mapping, rec_doc: str, rec_kind: str, rec_text: str, threshold: float = 0.9) -> bool:
    """An extracted record matches a gold decision: same doc and kind, text holds first and last quote."""
    if rec_doc != gold["doc"] or rec_kind != gold["kind"]:
        return False
    return is_relevant(rec_text, gold["quote"], threshold) and is_relevant(rec_text, gold["quote_last"], threshold)


def score_decisions(gold: Sequence[Mapping], extracted: Sequence[Mapping], threshold: float = 0.9) -> dict:
    """Precision/recall of extracted decision records against gold entries.

    ``extracted`` items have ``doc_id``, ``kind``, ``text`` and ``meeting_date`` (ISO string or None).
    Returns metrics plus the matches and the unmatched items of both sides.
    """
    pairs = [(gi, ei) for gi, g in enumerate(gold) for ei, e in enumerate(extracted)
             if gold_matches(g, e["doc_id"], e["kind"], e["text"], threshold)]
    gold_hit = {gi for gi, _ in pairs}
    ext_hit = {ei for _, ei in pairs}
    first_match: dict[int, int] = {}
    for gi, ei in pairs:
        first_match.setdefault(gi, ei)
    date_ok = [gi for gi, ei in first_match.items()
               if str(extracted[ei].get("meeting_date") or "") == str(gold[gi].get("meeting_date") or "")]
    n_gold, n_ext = len(gold), len(extracted)
    return {
        "precision": len(ext_hit) / n_ext if n_ext else 0.0,
        "recall": len(gold_hit) / n_gold if n_gold else 0.0,
        "date_accuracy": len(date_ok) / len(first_match) if first_match else 0.0,
        "n_gold": n_gold,
        "n_extracted": n_ext,
        "n_matched_gold": len(gold_hit),
        "n_matched_extracted": len(ext_hit),
        "_pairs": pairs,
        "_unmatched_gold": [gi for gi in range(n_gold) if gi not in gold_hit],
        "_unmatched_extracted": [ei for ei in range(n_ext) if ei not in ext_hit],
        "_date_wrong": [(gi, ei) for gi, ei in first_match.items() if gi not in date_ok],
    }


def run_decisions(gold_path: Path, out: Path, index_dir: Path) -> dict:
    from evals import report
    from indexer.store import load_index

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    gold = [json.loads(line) for line in Path(gold_path).read_text(encoding="utf-8").splitlines() if line.strip()]
    index = load_index(Path(index_dir))
    all_ext = [{"id": d.id, "doc_id": d.doc_id, "kind": d.kind, "text": d.text, "item": d.item,
                "meeting_date": d.meeting_date.isoformat() if d.meeting_date else None} for d in index.decisions]
    gold_docs = {g["doc"] for g in gold}
    # Gold covers whole documents: records from documents nobody annotated are not counted as wrong.
    extracted = [e for e in all_ext if e["doc_id"] in gold_docs]
    res = score_decisions(gold, extracted)
    public = {k: v for k, v in res.items() if not k.startswith("_")}
    public["n_extracted_all_documents"] = len(all_ext)
    result = {"decisions": public}
    _write_json(out / "metrics.json", result)
    (out / "report.md").write_text(report.decisions_report(public, res, gold, extracted, str(index_dir)), encoding="utf-8")
    return result


# ================================================================ public benchmarks


def docs_from_hits(hits: Sequence[tuple[str, float]], k: int = 100) -> dict[str, float]:
    """Aggregate ranked passage hits (doc id, score) to documents: a document ranks at its best chunk."""
    out: dict[str, float] = {}
    for rank, (doc_id, _score) in enumerate(hits, start=1):
        if doc_id not in out:
            out[doc_id] = 1.0 / rank
            if len(out) >= k:
                break
    return out


def run_benchmark(bench, out: Path, retrievers: Sequence[str] = ("bm25", "dense", "hybrid"), k: int = 100,
                  method: str = "direct", published: Mapping | None = None, limit_queries: int | None = None) -> dict:
    from evals import report
    from evals.bench_index import build_bench_index
    from indexer.store import load_index
    from service.config import ServiceSettings
    from service.retrieve import Retriever

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    index_dir, id_map, build_info = build_bench_index(bench, out / "index", method=method)
    index = load_index(index_dir)
    encoder = load_encoder(index.manifest["model"]["name"], index)
    s = ServiceSettings()
    # Many chunks per document: look deeper than k passages so k documents survive aggregation.
    retriever = Retriever.from_settings(index, encoder, s, candidates=max(s.candidates, 3 * k))
    queries = bench.queries[:limit_queries] if limit_queries else bench.queries
    qrels = {q.id: bench.qrels[q.id] for q in queries}
    metrics: dict[str, dict] = {}
    for mode in retrievers:
        run: dict[str, dict[str, float]] = {}
        lat = []
        for q in queries:
            t0 = time.perf_counter()
            hits = retriever.search(q.text, 3 * k, mode=mode, use_hints=False)
            lat.append((time.perf_counter() - t0) * 1000)
            run[q.id] = docs_from_hits([(id_map[h.chunk.doc_id], h.score) for h in hits], k)
        m = from_graded_run(qrels, run, ("ndcg@10", "recall@100", "recall@1", "recall@5", "recall@10", "mrr@10"))
        metrics[mode] = {**m, "n": len(queries), "latency_ms_p50": percentile(lat, 50)}
    _write_json(out / "metrics.json", metrics)
    (out / "report.md").write_text(report.bench_report(bench.name, metrics, build_info, published or {}), encoding="utf-8")
    return metrics


def _write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")


# ================================================================ /ask ablation


def run_ask_ablation(questions, unanswerable, out: Path, index_dir: Path) -> dict:
    """/ask with all its named checks, then with each switched off in turn (one index and model load).

    A check earns its keep when switching it off loses more right declines than it gains answers.
    """
    from fastapi.testclient import TestClient

    from evals import report
    from service.answer import Answerer
    from service.app import create_app
    from service.config import ServiceSettings
    from service.schemas import AskRequest, Turn

    settings = ServiceSettings(index_dir=index_dir)
    names = sorted(settings.enabled_checks())
    result: dict[str, dict] = {}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with TestClient(create_app(settings)) as client:
        services = client.app.state.services
        base = services.answerer

        def span_text(doc_id: str, start: int, end: int) -> str | None:
            text = services.index.texts.get(doc_id)
            return text[start:end] if text is not None else None

        for off in [None, *names]:
            s = settings.model_copy(update={"ask_checks": ",".join(n for n in names if n != off)})
            answerer = Answerer(s, base.retriever, base.decisions, base.encoder, base.judge)

            def ask(question: str, history=(), answerer=answerer) -> dict:
                req = AskRequest(question=question, history=[Turn(question=h) for h in history])
                return answerer.answer(req).model_dump(mode="json")

            metrics, _, _ = score_ask(questions, unanswerable, ask, span_text)
            result["all checks" if off is None else f"without {off}"] = metrics
    _write_json(out / "metrics.json", {"ask_ablation": result})
    (out / "report.md").write_text(report.ask_ablation_report(result, str(index_dir)), encoding="utf-8")
    return {"ask_ablation": result}
