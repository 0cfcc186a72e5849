"""One results page from the evaluation runs: `python -m evals summary --out evals/out`.

Reads the metrics.json each subcommand wrote under OUT (run/, ablate/, ask/, ask_llm/ when an LLM
was configured, decisions/, cranfield/, scifact/, and heldout_run/, heldout_ask/, heldout2_run/, heldout2_ask/ for the held-out sets), writes evals/RESULTS.md (the
tables the README quotes) and copies the recall@k plot beside it, so the committed numbers always
come from one command (`make evals`).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

from evals.report import COLS, PUBLISHED, _f, _table

TARGETS = {"recall@5": 0.90, "mrr@10": 0.75}


def _load(folder: Path) -> dict | None:
    path = folder / "metrics.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def retrieval_section(m: Mapping, source: str = "evals/questions.jsonl", plot: bool = True) -> list[str]:
    lines = [f"## Retrieval on {source}", "",
             f"{next(iter(m.values()))['n']} questions; a passage counts when it holds a contiguous run of ≥ 60% of an "
             "evidence quote's words. Targets: hybrid Recall@5 ≥ 0.90 and MRR@10 ≥ 0.75.", ""]
    rows = [[name, *[v.get(c) for c in COLS], v.get("latency_ms_p50")] for name, v in m.items()]
    lines += [_table(rows, ["retriever", *COLS, "p50 ms (in process)"]), ""]
    kinds = sorted({k for v in m.values() for k in v.get("per_kind", {})})
    lines += ["Per kind, Recall@5 / MRR@10:", ""]
    rows = []
    for kind in kinds:
        n = next(v["per_kind"][kind]["n"] for v in m.values() if kind in v.get("per_kind", {}))
        rows.append([f"{kind} ({n})", *[f"{_f(v['per_kind'][kind].get('recall@5'))} / {_f(v['per_kind'][kind].get('mrr@10'))}"
                                         for v in m.values() if kind in v.get("per_kind", {})]])
    lines += [_table(rows, ["kind", *m.keys()]), ""]
    return lines + (["![recall@k](recall_at_k.png)", ""] if plot else [])


def ablation_section(m: Mapping) -> list[str]:
    lines = ["## What each part of the hybrid ranking is worth", "",
             "`python -m evals ablate`: the service's hybrid retriever with one part switched off at a time, same questions.", ""]
    rows = [[name, *[v.get(c) for c in COLS]] for name, v in m.items()]
    return lines + [_table(rows, ["variant", *COLS]), ""]


def ask_section(m: Mapping, source: str = "evals/questions.jsonl and evals/unanswerable.jsonl",
                answerer: str = "extractive answerer") -> list[str]:
    a = m["ask"]
    llm = [["answers written by the LLM (the rest fell back or declined)", a.get("llm_answers")]] \
        if answerer != "extractive answerer" else []
    rows = [["answerable questions found (target ≥ 0.90)", a.get("answered_found")],
            ["answerable, answered with a citation holding the evidence (target ≥ 0.85)", a.get("answered_with_evidence")],
            ["unanswerable questions declined (target ≥ 0.80)", a.get("declined_unanswerable")]]
    if a.get("n_near_topic"):
        rows.append([f"near-topic unanswerable declined (target ≥ 0.70; {a['n_near_topic']} questions)",
                     a.get("declined_near_topic")])
    if a.get("unsure") is not None:
        rows.append(["answers flagged unsure (closest quotes shown, counted as declined)", a.get("unsure")])
    rows += [["citations whose quote is not verbatim in its document", a.get("non_verbatim_quotes")],
             ["questions (answerable / unanswerable)", f"{a.get('n_answerable')} / {a.get('n_unanswerable')}"]]
    rows += llm
    return [f"## /ask ({answerer}) on {source}", "", _table(rows, ["metric", "value"]), ""]


def ask_ablation_section(m: Mapping, source: str) -> list[str]:
    keys = ["answered_with_evidence", "answered_found", "declined_unanswerable", "declined_near_topic"]
    rows = [[name, *[v.get(k) for k in keys]] for name, v in m["ask_ablation"].items()]
    return [f"### What each /ask check is worth on {source}", "",
            "`python -m evals ablate-ask`: all named checks on, then each switched off in turn (BOARDPAPERS_ASK_CHECKS).", "",
            _table(rows, ["configuration", *keys]), ""]


def decisions_section(m: Mapping) -> list[str]:
    d = m["decisions"]
    return ["## Decision extraction against evals/decisions_gold.jsonl", "",
            _table([["precision (target ≥ 0.95)", d.get("precision")], ["recall (target ≥ 0.95)", d.get("recall")],
                    ["meeting date right, of matched", d.get("date_accuracy")],
                    ["gold / extracted", f"{d.get('n_gold')} / {d.get('n_extracted')}"]], ["metric", "value"]), ""]


def bench_section(name: str, m: Mapping) -> list[str]:
    lines = [f"## {name}", "", "| system | nDCG@10 | Recall@100 |", "|---|---|---|"]
    for mode, v in m.items():
        lines.append(f"| **ours: {mode}** | {_f(v.get('ndcg@10'))} | {_f(v.get('recall@100'))} |")
    for label, ndcg, r100, src in PUBLISHED.get(name.lower(), []):
        lines.append(f"| {label} ({src}) | {_f(ndcg)} | {_f(r100)} |")
    return lines + [""]


# Held-out question sets, oldest first: (folder under evals/, name, how far it is still unseen).
HELD_OUT = (
    ("heldout", "1", "Set 1 is no longer wholly unseen: its unanswerable questions and which of them were "
                     "answered were read while the figure check was refined (see the README)."),
    ("heldout2", "2", "Set 2 was first measured before any change was judged on it; the one change made "
                      "after its questions were read (a month check for decision questions) left its numbers as they were."),
    ("heldout3", "3", "Set 3 was written before the encoder and the judge were trained, by a writer who never saw "
                      "the training questions; nothing was tuned on it. Its Kent questions are measured only "
                      "against an index that holds the Kent PDFs (see the README)."),
    ("heldout4", "4", "Set 4 was written after the second round of training questions, before the models were "
                      "retrained on them, by a writer who saw only the five bundled papers (never the training "
                      "questions, the service or its output); it was measured once, after the models were chosen on dev."),
)


def summarise(out: Path, dest: Path) -> Path:
    lines = [f"# Evaluation results ({time.strftime('%Y-%m-%d')})", "",
             "Written by `make evals` (`python -m evals summary`); every number below comes from the "
             "metrics.json files of that run.", ""]
    found = False
    lines += ["The tuning set (evals/questions.jsonl, evals/unanswerable.jsonl) is part of the training data "
              "of the encoder and the judge (evals/train/), so its numbers show fit, not what to expect; "
              "the held-out sets below are the estimate.", ""]
    if (m := _load(out / "run")) is not None:
        lines += retrieval_section(m)
        found = True
        if (out / "run" / "recall_at_k.png").exists():
            shutil.copyfile(out / "run" / "recall_at_k.png", dest.parent / "recall_at_k.png")
    if (m := _load(out / "ablate")) is not None:
        lines += ablation_section(m)
        found = True
    if (m := _load(out / "ask")) is not None:
        lines += ask_section(m)
        found = True
    if (m := _load(out / "ask_llm")) is not None:  # only when make evals ran with BOARDPAPERS_LLM_URL set
        lines += ask_section(m, answerer="LLM answerer, falling back to the extractive one")
        found = True
    held = []
    for folder, name, how in HELD_OUT:
        part = []
        if (m := _load(out / f"{folder}_run")) is not None:
            part += retrieval_section(m, f"held-out set {name} (evals/{folder}/questions.jsonl)", plot=False)
        if (m := _load(out / f"{folder}_ask")) is not None:
            part += ask_section(m, f"held-out set {name} (evals/{folder}/)")
        if (m := _load(out / f"{folder}_ablate_ask")) is not None:
            part += ask_ablation_section(m, f"held-out set {name}")
        if part:
            held += [how, "", *part]
    if held:
        # Held-out numbers are the honest estimate: nothing was tuned on these questions.
        lines += ["# Held-out questions", "",
                  "Written without looking at the service and never used to choose a weight or threshold; "
                  "the numbers above were tuned on their own questions.", "", *held]
        found = True
    if (m := _load(out / "decisions")) is not None:
        lines += decisions_section(m)
        found = True
    for name, folder in (("SciFact", "scifact"), ("Cranfield", "cranfield")):
        if (m := _load(out / folder)) is not None:
            lines += bench_section(name, m)
            found = True
    if not found:
        raise FileNotFoundError(f"no metrics.json under {out}: run the evals first (make evals)")
    dest.write_text("\n".join(lines), encoding="utf-8")
    return dest
