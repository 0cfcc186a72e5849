"""Markdown reports for the evaluation runners."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

COLS = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10")

# Published figures, copied from the project's benchmark notes (BEIR test split for SciFact).
# Sources as cited there; numbers are nDCG@10 / Recall@100.
PUBLISHED = {
    "scifact": [
        ("BM25, BEIR paper (Elasticsearch multifield)", 0.665, None, "Thakur et al. 2021, BEIR, Table 2"),
        ("BM25, Pyserini flat (k1=0.9, b=0.4)", 0.6789, 0.9253, "castorini/pyserini pyserini/2cr/beir.yaml"),
        ("BM25, bm25s defaults (k1=1.5, b=0.75, stemmer)", 0.687, None, "xhluca/bm25-benchmarks README"),
        ("all-MiniLM-L6-v2 dense (MTEB paper run)", 0.645, 0.925, "embeddings-benchmark/mtebpaper results/all-MiniLM-L6-v2/SciFact.json"),
        ("BM25 + MS MARCO cross-encoder rerank", 0.688, None, "BEIR paper, Table 2"),
        ("RRF of BM25 + BGE-base (stronger embedder)", 0.744, None, "castorini/quackir docs/beir/experiments-beir-rrf.md"),
    ],
    "cranfield": [],
}


def _f(v, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _table(rows: Sequence[Sequence], header: Sequence[str]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_f(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def run_report(metrics: Mapping, questions, results, plot_path, source: str) -> str:
    lines = [f"# Retrieval evaluation ({_stamp()})", "",
             f"Source: `{source}`. {len(questions)} questions; a passage is relevant when it holds a contiguous run of "
             "≥60% of an evidence quote's words (evals/relevance.py). Recall@k = share of questions with a relevant "
             "passage in the top k.", "", "## Overall", ""]
    rows = [[name, *[m.get(c) for c in COLS], m["n"], m.get("latency_ms_p50"), m.get("latency_ms_p95")]
            for name, m in metrics.items()]
    lines += [_table(rows, ["retriever", *COLS, "n", "p50 ms", "p95 ms"]), ""]
    kinds = sorted({k for m in metrics.values() for k in m.get("per_kind", {})})
    for kind in kinds:
        lines += [f"## kind: {kind}", ""]
        rows = [[name, *[m["per_kind"][kind].get(c) for c in COLS], m["per_kind"][kind]["n"]]
                for name, m in metrics.items() if kind in m.get("per_kind", {})]
        lines += [_table(rows, ["retriever", *COLS, "n"]), ""]
    if plot_path:
        lines += ["## Recall@k", "", f"![recall@k]({plot_path.name})", ""]
    # Misses of the best retriever, for error analysis
    if results:
        best = max(results, key=lambda r: r.metrics.get("recall@10", 0))
        qmap = {q.id: q for q in questions}
        missed = [qid for qid, r in best.ranks.items() if r is None]
        lines += [f"## Questions `{best.name}` misses in the top 10 ({len(missed)})", ""]
        for qid in missed:
            q = qmap[qid]
            others = ", ".join(f"{r.name}: {r.ranks[qid]}" for r in results if r is not best)
            lines.append(f"- {qid} [{q.kind}] {q.question} ({others or 'no other retriever'})")
        lines.append("")
    return "\n".join(lines)


def ask_report(metrics: Mapping, outcomes, bad_quotes, source: str) -> str:
    lines = [f"# /ask evaluation ({_stamp()})", "", f"Source: `{source}`.", "",
             _table([[k, v] for k, v in metrics.items()], ["metric", "value"]), "",
             "answered_with_evidence: share of answerable questions with found = true and a citation whose quote "
             "(or the document text at its span) holds ≥60% of an evidence quote contiguously. "
             "declined_unanswerable: share of unanswerable questions with found = false.", ""]
    reasons = sorted({o.reason or "unstated" for o in outcomes if not o.found})
    if reasons:
        # Which check declined: the evidence threshold, or a check of what the question asks for.
        def count(answerable: bool, reason: str) -> int:
            return sum(not o.found and (o.reason or "unstated") == reason and o.answerable == answerable
                       for o in outcomes)

        lines += ["## Why questions were declined", "",
                  _table([[r, count(False, r), count(True, r)] for r in reasons],
                         ["reason", "unanswerable (right)", "answerable (wrong)"]), ""]
    written = [o for o in outcomes if o.answerer == "llm"]
    if written:
        lines += [f"## Answers written by the LLM ({len(written)})", ""]
        lines += [f"- {o.id} (evidence={o.with_evidence}) {o.question} → {o.answer[:200]!r}" for o in written]
        lines.append("")
    ans_missing = [o for o in outcomes if o.answerable and not o.with_evidence]
    lines += [f"## Answerable questions without evidence in the citations ({len(ans_missing)})", ""]
    lines += [f"- {o.id} (found={o.found}, {len(o.citations)} citations) {o.question}" for o in ans_missing]
    wrong = [o for o in outcomes if not o.answerable and o.found]
    lines += ["", f"## Unanswerable questions answered anyway ({len(wrong)})", ""]
    for o in wrong:
        lines.append(f"- {o.id} {o.question} → {o.answer[:200]!r}")
    lines += ["", f"## Non-verbatim citation quotes ({len(bad_quotes)})", ""]
    for b in bad_quotes:
        lines.append(f"- {b['question']} cite {b['n']} {b['document_id']}[{b['char_start']}:{b['char_end']}]: "
                     f"quote {b['quote'][:120]!r} vs text {str(b['document_text'])[:120]!r}")
    return "\n".join(lines) + "\n"


def ask_ablation_report(result: Mapping[str, Mapping], source: str) -> str:
    """One row per configuration: what switching each /ask check off does to the answers."""
    keys = ["answered_with_evidence", "answered_found", "declined_unanswerable", "declined_near_topic"]
    rows = [[name, *(None if m.get(k) is None else round(m[k], 3) for k in keys)] for name, m in result.items()]
    return "\n".join([f"# /ask checks ablation ({_stamp()})", "", f"Source: `{source}`.", "",
                      _table(rows, ["configuration", *keys]), "",
                      "Each row switches one named check off (BOARDPAPERS_ASK_CHECKS); a check earns its keep "
                      "when its row loses more right declines than it gains answers with the evidence.", ""])


def decisions_report(public: Mapping, res: Mapping, gold, extracted, source: str) -> str:
    lines = [f"# Decision extraction ({_stamp()})", "", f"Index: `{source}`. A gold entry matches an extracted record "
             "of the same document and kind whose text holds ≥90% of both its first and last quote contiguously.", "",
             _table([[k, v] for k, v in public.items()], ["metric", "value"]), ""]
    lines += [f"## Unmatched gold ({len(res['_unmatched_gold'])})", ""]
    for gi in res["_unmatched_gold"]:
        g = gold[gi]
        lines.append(f"- {g['id']} {g['kind']} {g['doc']} {g['meeting_date']} item {g.get('item')!r}: {g['quote'][:140]!r}")
    lines += ["", f"## Unmatched extracted ({len(res['_unmatched_extracted'])})", ""]
    for ei in res["_unmatched_extracted"]:
        e = extracted[ei]
        lines.append(f"- {e['id']} {e['kind']} {e['doc_id']} {e['meeting_date']} item {e.get('item')!r}: {e['text'][:140]!r}")
    lines += ["", f"## Matched with a wrong meeting date ({len(res['_date_wrong'])})", ""]
    for gi, ei in res["_date_wrong"]:
        lines.append(f"- {gold[gi]['id']}: gold {gold[gi]['meeting_date']} vs extracted {extracted[ei]['meeting_date']} ({extracted[ei]['id']})")
    return "\n".join(lines) + "\n"


def bench_report(name: str, metrics: Mapping, build_info: Mapping, published: Mapping | None = None) -> str:
    pub = PUBLISHED.get(name.lower(), [])
    lines = [f"# {name} with our indexer and retrievers ({_stamp()})", "",
             f"Index: method `{build_info.get('method')}`, {build_info.get('documents')} documents, "
             f"{build_info.get('chunks')} chunks, built in {build_info.get('seconds')} s"
             f"{' (cached)' if build_info.get('cached') else ''}. Passage hits are aggregated to documents "
             "(a document ranks at its best chunk); no query hints (dates/councils) are used.", "",
             "| system | nDCG@10 | Recall@100 | n queries | source |", "|---|---|---|---|---|"]
    for mode, m in metrics.items():
        lines.append(f"| **ours: {mode}** | {_f(m.get('ndcg@10'))} | {_f(m.get('recall@100'))} | {m.get('n')} | this run |")
    for label, ndcg, r100, src in pub:
        lines.append(f"| {label} | {_f(ndcg)} | {_f(r100)} | | {src} |")
    if not pub:
        lines += ["", "No comparable modern published table exists for this collection; compare our retrievers with each other."]
    else:
        lines += ["", "Published numbers copied from the project's benchmark notes (PUBLISHED.md), which cite the sources above."]
    lines += ["", "## All metrics", "",
              _table([[mode, *[m.get(c) for c in ("ndcg@10", "recall@100", "recall@10", "mrr@10")], m.get("latency_ms_p50")]
                      for mode, m in metrics.items()],
                     ["retriever", "ndcg@10", "recall@100", "recall@10", "mrr@10", "p50 ms"]), ""]
    return "\n".join(lines)
