"""Fine-tune the bundled MiniLM bi-encoder on members' questions (python -m evals train-encoder).

The GenQ/GPL recipe with real questions: each training question is paired with the passage and the
sentence that hold its evidence, and with a hard negative of each (the best-ranked passage or
sentence the base retriever finds that does not hold the evidence); the loss is in-batch
multiple-negatives ranking (softmax over scaled cosines, scale 20). A plain torch loop rather than
sentence-transformers' Trainer, which would need `datasets` and `accelerate` for this one loss.
Repeatable: fixed seeds and shuffles from a seeded generator (on CPU, with the same thread count). The epoch with the
best dev Recall@5 (dense, passages) is kept.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evals.relevance import is_relevant, normalise

log = logging.getLogger(__name__)
SCALE = 20.0


@dataclass(frozen=True)
class Triplet:
    anchor: str
    positive: str
    negative: str
    group: str  # the positive's identity: two in one batch would be each other's false negatives


def sentence_holds(sentence: str, evidence: Sequence[str]) -> bool:
    """A sentence answers when it holds most of a quote, or is itself a part of one (a quote can span sentences)."""
    s = normalise(sentence)
    return any(is_relevant(sentence, e) or (len(s.split()) >= 5 and s in normalise(e)) for e in evidence)


def mine(rows: list[dict], index, retriever, seed: int = 13, negatives_from: int = 5) -> list[Triplet]:
    """Triplets for each answerable row: (question, evidence passage, hard negative passage) and the
    same for sentences. Hard negatives are drawn from the base retriever's top non-relevant results."""
    from indexer.sentences import embed_text

    rng = random.Random(seed)
    texts = index.texts
    out: list[Triplet] = []
    for r in rows:
        q = retriever.reader.read(r["question"], r.get("history") or [])
        hits = retriever.search(q, 30)
        rel = [h for h in hits if any(is_relevant(h.chunk.text, e) for e in r["evidence"])]
        non = [h for h in hits if h not in rel]
        pos_rows = [h.row for h in rel] or [i for i, c in enumerate(index.chunks) if c.doc_id == r["doc"]
                                             and any(is_relevant(c.text, e) for e in r["evidence"][:1])][:1]
        if not pos_rows or not non:
            continue
        pos = index.chunks[pos_rows[0]]
        neg = rng.choice(non[:negatives_from]).chunk
        out.append(Triplet(q.query, pos.embed_text, neg.embed_text, f"c{pos.id}"))
        # Sentences: the evidence sentence of the positive passage, and the best-looking sentence of a
        # negative passage (its first sentence with as many question words as possible).
        pos_sents = [i for i in retriever.sentences_of(pos_rows[0])
                     if sentence_holds(texts[pos.doc_id][index.sentences[i].start:index.sentences[i].end], r["evidence"])]
        neg_hit = rng.choice(non[:negatives_from])
        neg_sents = list(retriever.sentences_of(neg_hit.row))
        if pos_sents and neg_sents:
            ps, ns = index.sentences[pos_sents[0]], index.sentences[rng.choice(neg_sents)]
            out.append(Triplet(q.query, embed_text(pos, texts[pos.doc_id][ps.start:ps.end]),
                               embed_text(neg_hit.chunk, texts[neg_hit.chunk.doc_id][ns.start:ns.end]),
                               f"s{pos_sents[0]}"))
    return out


def batches(triplets: list[Triplet], size: int, rng: random.Random) -> list[list[Triplet]]:
    """Shuffled batches in which no positive appears twice (it would be its own in-batch negative).

    Sentence triplets and passage triplets go in separate batches: a batch is padded to its longest
    text, and one passage in a batch of sentences would double the cost of the whole batch.
    """
    out: list[list[Triplet]] = []
    for kind in (True, False):
        pool = [t for t in triplets if t.group.startswith("s") == kind]
        rng.shuffle(pool)
        while pool:
            batch, groups, rest = [], set(), []
            for t in pool:
                if len(batch) < size and t.group not in groups:
                    batch.append(t)
                    groups.add(t.group)
                else:
                    rest.append(t)
            out.append(batch)
            pool = rest
    rng.shuffle(out)
    return out


def dev_recall(model, dev_rows: list[dict], index, reader, k: int = 5) -> float:
    """Dense Recall@k of the dev questions over every passage's embedded text, with the model as it is now."""
    if not dev_rows:
        return 0.0
    vecs = model.encode([c.embed_text for c in index.chunks], batch_size=64, normalize_embeddings=True,
                        convert_to_numpy=True)
    qs = [reader.read(r["question"], r.get("history") or []).query for r in dev_rows]
    qv = model.encode(qs, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    top = np.argsort(-(qv @ vecs.T), axis=1)[:, :k]
    found = 0
    for r, rows in zip(dev_rows, top):
        found += any(any(is_relevant(index.chunks[i].text, e) for e in r["evidence"]) for i in rows)
    return found / len(dev_rows)


def train(base: str, triplets: list[Triplet], dev_rows: list[dict], index, reader, out: Path, *,
          epochs: int = 3, batch_size: int = 32, lr: float = 3e-5, seed: int = 13, max_tokens: int = 128) -> dict:
    """Fine-tune base on the triplets; save the best epoch (by dev Recall@5) to out. Returns the log."""
    import torch
    from sentence_transformers import SentenceTransformer

    from indexer.embed import resolve_model_path

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    model = SentenceTransformer(resolve_model_path(base), device="cpu")
    # Training sees at most max_tokens word pieces of a passage (the model reads 256 when indexing):
    # a backward pass over 256-token passages costs about 3x as much here (2 cores), and the
    # sentence triplets, which carry most of the signal, are shorter than 128 anyway.
    window = model.max_seq_length
    rng = random.Random(seed)
    steps_per_epoch = len(batches(triplets, batch_size, random.Random(seed)))
    total = max(1, steps_per_epoch * epochs)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warmup = max(1, total // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / (total - warmup))))
    prepare = getattr(model, "preprocess", None) or model.tokenize

    def embed(texts: list[str]):
        features = prepare(texts)
        return torch.nn.functional.normalize(model(features)["sentence_embedding"], dim=1)

    history = [{"epoch": 0, "dev_recall@5": dev_recall(model, dev_rows, index, reader)}]
    log.info("epoch 0 (base): dev Recall@5 %.3f", history[0]["dev_recall@5"])
    best, best_state = history[0]["dev_recall@5"], None
    from tqdm import tqdm

    for epoch in range(1, epochs + 1):
        model.train()
        model.max_seq_length = max_tokens
        t0, losses = time.time(), []
        for batch in tqdm(batches(triplets, batch_size, rng), desc=f"encoder epoch {epoch}/{epochs}", unit="batch"):
            a = embed([t.anchor for t in batch])
            pn = embed([t.positive for t in batch] + [t.negative for t in batch])
            loss = torch.nn.functional.cross_entropy(SCALE * a @ pn.T, torch.arange(len(batch)))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(float(loss))
        model.eval()
        model.max_seq_length = window
        r5 = dev_recall(model, dev_rows, index, reader)
        history.append({"epoch": epoch, "loss": round(float(np.mean(losses)), 4), "dev_recall@5": r5,
                        "seconds": round(time.time() - t0, 1)})
        log.info("epoch %d: loss %.3f, dev Recall@5 %.3f", epoch, np.mean(losses), r5)
        if r5 > best:
            best = r5
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.max_seq_length = window
    if best_state is not None:
        model.load_state_dict(best_state)
    out.mkdir(parents=True, exist_ok=True)
    model.save(str(out))
    halve_weights(out)
    return {"base": base, "epochs": history, "kept_dev_recall@5": best, "triplets": len(triplets),
            "batch_size": batch_size, "lr": lr, "seed": seed, "train_max_tokens": max_tokens, "kept_epoch": max(history, key=lambda h: h["dev_recall@5"])["epoch"]}


def halve_weights(folder: Path) -> None:
    """Store the weights as float16 (43 MB instead of 87 MB, so they can ship in the repo); the
    encoder loads them back as float32 (indexer/embed.py), so every vector is computed in float32
    from the same rounded weights, at build and at query time alike."""
    import torch
    from safetensors.torch import load_file, save_file

    for path in folder.rglob("*.safetensors"):
        weights = load_file(str(path))
        save_file({k: v.to(torch.float16) if v.is_floating_point() else v for k, v in weights.items()}, str(path),
                  metadata={"format": "pt"})


def write_card(out: Path, info: dict) -> None:
    """training.json (the whole record) and a model card that says what this model is and how it was made."""
    (out / "training.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    epochs = "; ".join(f"epoch {e['epoch']}: {e['dev_recall@5']:.3f}" for e in info["epochs"])
    (out / "README.md").write_text(
        "# boardpapers/minilm-members\n\n"
        f"all-MiniLM-L6-v2 ({info['base']}) fine-tuned on council members' and officers' questions about board "
        "papers, so that lay wording (\"kids leaving care\", \"lighting up\") finds the passage that answers it.\n\n"
        f"- Data: {info['train_questions']} training questions of `evals/train/train_questions.jsonl` "
        f"(papers left out: {', '.join(info.get('excluded_docs') or []) or 'none'}"
        + (f"; cross-fitting: fold {info['without_fold']} of {info['folds']} left out" if "without_fold" in info else "")
        + "), each paired with the passage and the "
        "sentence holding its evidence and a hard negative of each mined by the base retriever: "
        f"{info['triplets']} triplets.\n"
        f"- Recipe: in-batch multiple-negatives ranking loss (scale 20), AdamW lr {info['lr']}, batch {info['batch_size']}, "
        f"passages cut to {info['train_max_tokens']} word pieces in training, seed {info['seed']}; the epoch with the best "
        f"dense Recall@5 on the {info['dev_questions']} dev questions is kept ({epochs}; kept epoch {info['kept_epoch']}).\n"
        "- Weights stored as float16 and loaded as float32.\n"
        "- Rebuilt by `make judge` (`python -m evals train-encoder`); see the repository README for what it is worth.\n",
        encoding="utf-8")
