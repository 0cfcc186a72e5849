"""Train the judge's cross-encoder (service/crossjudge.py) over the light judge's top K candidates.

Warm-started from the tuned encoder (models/encoder/), cut to its first few layers so that
training and serving fit two cores, with a fresh scoring head on the mean of the last layer. Each
training question contributes the light judge's K best candidates as one list (a question whose
list misses every answering candidate gets its best answering one in place of the last, so the
list teaches something); the loss is a softmax over the list towards the answering candidates
(listwise) plus binary cross-entropy per candidate (pointwise: an unanswerable question's list
must score low everywhere, which is what the answerability calibration reads). Early-stopped on
the dev split's question-level AUC; exported once to ONNX (int8 weights) in the judge's folder.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from service.crossjudge import CROSS_VERSION

log = logging.getLogger(__name__)


@dataclass
class Lists:
    """One list per question: candidate rows (into Examples) of the light judge's top K."""

    rows: list[np.ndarray]
    question: list[int]  # which question (row index into Examples.asked / answerable)


def top_lists(ex, light_logits: np.ndarray, k: int, ensure_positive: bool) -> Lists:
    rows, qs = [], []
    for qi in np.unique(ex.question):
        idx = np.flatnonzero(ex.question == qi)
        order = idx[np.argsort(-light_logits[idx], kind="stable")]
        top = order[:k].copy()
        if ensure_positive and ex.labels[top].sum() == 0 and ex.labels[order].sum() > 0:
            top[-1] = order[np.flatnonzero(ex.labels[order] > 0.5)[0]]
        rows.append(top)
        qs.append(int(qi))
    return Lists(rows, qs)


def build_model(encoder_path: str, layers: int):
    import torch
    from transformers import AutoModel

    class Cross(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            bert = AutoModel.from_pretrained(encoder_path, dtype=torch.float32)
            bert.encoder.layer = bert.encoder.layer[:layers]
            bert.config.num_hidden_layers = layers
            self.bert = bert
            self.head = torch.nn.Linear(bert.config.hidden_size, 1)

        def forward(self, input_ids, attention_mask, token_type_ids):
            h = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            return self.head((h * m).sum(1) / m.sum(1).clamp(min=1.0)).squeeze(-1)

    return Cross()


def _tokenizer(encoder_path: str, max_tokens: int):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(encoder_path) / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_tokens, strategy="only_second")
    return tok


def score_lists(model, tok, ex, lists: Lists, offset: np.ndarray, light_weight: float) -> list[np.ndarray]:
    """The final logit (the model's plus light_weight times the light judge's) of each candidate of each list."""
    import torch

    from service.crossjudge import encode_pairs

    model.eval()
    out = []
    with torch.no_grad():
        for rows, qi in zip(lists.rows, lists.question):
            ids, mask, types = encode_pairs(tok, ex.asked[qi], [ex.texts[r] for r in rows])
            z = model(torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(types)).numpy()
            out.append(z + light_weight * offset[rows])
    return out


def dev_metrics(ex, lists: Lists, scores: list[np.ndarray]) -> tuple[float, float]:
    """(question AUC of the best score: its candidate answers vs not; share of answerable questions
    whose best candidate answers), as train_judge measures the light judge."""
    from evals.metrics import auc

    best, good = [], []
    for rows, qi, s in zip(lists.rows, lists.question, scores):
        j = int(np.argmax(s))
        best.append(float(s[j]))
        good.append(float(ex.labels[rows[j]] > 0.5 and ex.answerable[qi]))
    best, good = np.asarray(best), np.asarray(good)
    return auc(best, good), float(good.sum() / max(1, ex.answerable.sum()))


def fit_cross(train, dev, train_logits: np.ndarray, dev_logits: np.ndarray, encoder_path: str, *, k: int = 12,
              layers: int = 3, max_tokens: int = 96, epochs: int = 3, lr: float = 5e-5, head_lr: float = 1e-3,
              questions_per_step: int = 8, pointwise_weight: float = 0.5, seed: int = 13, light_weight: float = 1.0,
              max_minutes: float = 60.0):
    """The trained model (best dev epoch), its tokenizer and the history.

    The model learns a correction to the light judge: its logit is added to light_weight times the
    light judge's, so training starts from the light judge's ranking rather than from a fresh head's
    noise (the earlier cross-encoder with a fresh head alone learned nothing). The word embeddings
    stay frozen: a third of the weights, and the few thousand lists would only overfit them.
    """
    import torch
    from tqdm import tqdm

    from service.crossjudge import encode_pairs

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_model(encoder_path, layers)
    tok = _tokenizer(encoder_path, max_tokens)
    tl = top_lists(train, train_logits, k, ensure_positive=True)
    dl = top_lists(dev, dev_logits, k, ensure_positive=False)
    model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    head = list(model.head.parameters())
    body = [p for n, p in model.named_parameters() if not n.startswith("head.") and p.requires_grad]
    opt = torch.optim.AdamW([{"params": body, "lr": lr}, {"params": head, "lr": head_lr}], weight_decay=0.01)
    pos = float(np.mean([train.labels[r].mean() for r in tl.rows]))
    bce = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(((1 - pos) / max(pos, 1e-6)) ** 0.5))
    history, best, best_state = [], -1.0, None
    a0, top0 = light_only(dev, dev_logits, k)
    history.append({"epoch": 0, "dev_question_auc": round(a0, 4), "dev_top1": round(top0, 4), "light_judge_alone": True})
    log.info("light judge alone over the same lists: dev question AUC %.3f, best candidate answers %.3f", a0, top0)
    t0 = time.time()
    for epoch in range(1, epochs + 1):
        model.train()
        perm = rng.permutation(len(tl.rows))
        steps = range(0, len(perm), questions_per_step)
        for start in tqdm(steps, desc=f"cross-encoder epoch {epoch}", unit="step"):
            group = perm[start:start + questions_per_step]
            texts_q, texts_c, ys, sizes, offs = [], [], [], [], []
            for g in group:
                rows = tl.rows[g]
                offs.append(train_logits[rows])
                texts_q += [train.asked[tl.question[g]]] * len(rows)
                texts_c += [train.texts[r] for r in rows]
                ys.append(train.labels[rows])
                sizes.append(len(rows))
            encs = tok.encode_batch(list(zip(texts_q, texts_c)))
            width = max(len(e.ids) for e in encs)
            ids = np.zeros((len(encs), width), np.int64)
            mask, types = np.zeros_like(ids), np.zeros_like(ids)
            for r, e in enumerate(encs):
                ids[r, :len(e.ids)], mask[r, :len(e.ids)], types[r, :len(e.ids)] = e.ids, 1, e.type_ids
            z = model(torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(types))
            z = z + light_weight * torch.from_numpy(np.concatenate(offs).astype(np.float32))
            y = torch.from_numpy(np.concatenate(ys).astype(np.float32))
            loss = pointwise_weight * bce(z, y)
            listwise, off = [], 0
            for n in sizes:
                zz, yy = z[off:off + n], y[off:off + n]
                off += n
                if yy.sum() > 0:
                    listwise.append(torch.logsumexp(zz, 0) - torch.logsumexp(zz[yy > 0.5], 0))
            if listwise:
                loss = loss + torch.stack(listwise).mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if (time.time() - t0) / 60 > max_minutes:
                break
        scores = score_lists(model, tok, dev, dl, dev_logits, light_weight)
        a, top1 = dev_metrics(dev, dl, scores)
        history.append({"epoch": epoch, "dev_question_auc": round(a, 4), "dev_top1": round(top1, 4),
                        "minutes": round((time.time() - t0) / 60, 1)})
        log.info("cross-encoder epoch %d: dev question AUC %.3f, best candidate answers %.3f", epoch, a, top1)
        if a > best:
            best, best_state = a, {n: p.detach().clone() for n, p in model.state_dict().items()}
        if (time.time() - t0) / 60 > max_minutes:
            log.warning("cross-encoder: stopped after %.0f minutes", (time.time() - t0) / 60)
            break
    model.load_state_dict(best_state)
    return model, tok, history


def light_only(dev, dev_logits: np.ndarray, k: int) -> tuple[float, float]:
    """The dev metrics of the light judge alone over the same lists (what the second stage must beat)."""
    dl = top_lists(dev, dev_logits, k, ensure_positive=False)
    return dev_metrics(dev, dl, [dev_logits[r] for r in dl.rows])


def export(model, out: Path, encoder_path: str, meta: dict, int8: bool = True) -> Path:
    """cross.onnx (int8 weights unless int8=False), cross_tokenizer.json and cross.json in out."""
    import io
    import warnings

    import torch

    out.mkdir(parents=True, exist_ok=True)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    example = torch.ones((2, 8), dtype=torch.int64)
    buffer = io.BytesIO()
    model.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example, example, torch.zeros_like(example)), buffer, input_names=names,
                          output_names=["logit"], opset_version=17, dynamo=False,
                          dynamic_axes={**{n: {0: "batch", 1: "tokens"} for n in names}, "logit": {0: "batch"}})
    fp32 = out / "cross.fp32.onnx"
    fp32.write_bytes(buffer.getvalue())
    target = out / "cross.onnx"
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(fp32), str(target), weight_type=QuantType.QInt8)
        fp32.unlink()
    else:
        fp32.replace(target)
    shutil.copyfile(Path(encoder_path) / "tokenizer.json", out / "cross_tokenizer.json")
    (out / "cross.json").write_text(json.dumps({"version": CROSS_VERSION, **meta}, indent=1) + "\n", encoding="utf-8")
    return target
