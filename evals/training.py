"""The training commands: split the written questions, fine-tune the encoder, train the judge."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from evals import trainset

log = logging.getLogger(__name__)


def _rows(split: str, exclude: tuple[str, ...]) -> list[dict]:
    rows = trainset.load(f"{split}_questions") + trainset.load(f"{split}_unanswerable")
    return [r for r in rows if not (r.get("doc") and r["doc"].startswith(exclude))]


def _folds(rows: list[dict], folds: int) -> list[int]:
    """Each row's cross-fitting fold, by its split group, so near-duplicates share a fold."""
    return [trainset.fold_of(k, folds) for k in trainset.group_keys(rows)]


def _services(index_dir: Path, model: str | None = None):
    from indexer.store import load_index
    from service.reload import build_services
    from service.config import ServiceSettings

    index = load_index(index_dir)
    # No judge while training one; the encoder is the index's own.
    settings = ServiceSettings(index_dir=index_dir, model=model or index.manifest["model"]["name"], use_judge=False)
    return build_services(settings, index=index)


def main(args) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    exclude = tuple(x for x in getattr(args, "exclude_docs", "").split(",") if x)
    if args.cmd == "split-training":
        s, dropped = trainset.split(args.files)
        counts = trainset.write(s, args.out)
        for d in dropped:
            print(f"left out {d}", file=sys.stderr)
        print(json.dumps({"counts": counts, "train": trainset.describe(s.train_questions + s.train_unanswerable),
                          "dev": trainset.describe(s.dev_questions + s.dev_unanswerable)}, indent=1))
        return 0
    if args.cmd == "train-encoder":
        from evals.train_encoder import mine, train, write_card

        svc = _services(args.index)
        rows = _rows("train", exclude)
        if args.folds > 1:  # cross-fitting: this encoder never sees fold `args.fold` (see train-judge)
            rows = [r for r, f in zip(rows, _folds(rows, args.folds)) if f != args.fold]
        train_rows = [r for r in rows if "evidence" in r]
        dev_rows = [r for r in _rows("dev", exclude) if "evidence" in r]
        triplets = mine(train_rows, svc.index, svc.retriever)
        log.info("%d triplets from %d training questions; %d dev questions", len(triplets), len(train_rows), len(dev_rows))
        info = train(svc.index.manifest["model"]["name"], triplets, dev_rows, svc.index, svc.retriever.reader, args.out,
                     epochs=args.epochs, batch_size=args.batch_size, lr=args.lr)
        info.update({"train_questions": len(train_rows), "dev_questions": len(dev_rows), "excluded_docs": list(exclude),
                     **({"without_fold": args.fold, "folds": args.folds} if args.folds > 1 else {}),
                     "data": "evals/train/{train,dev}_questions.jsonl"})
        write_card(args.out, info)
        print(json.dumps(info, indent=1))
        return 0
    from evals.train_judge import train_judge

    svc = _services(args.index)
    cross = {"epochs": args.cross_epochs, "k": args.cross_k, "layers": args.cross_layers}
    train_rows = _rows("train", exclude)
    fold_answerers = None
    if args.fold_indexes:
        # Cross-fitted judge examples: each training question's candidates come from the index of the
        # encoder that never trained on it, so the judge learns how far to trust the encoder's scores on
        # questions it has not seen, which is every question it will serve.
        fold_answerers = [_services(Path(p)).answerer for p in args.fold_indexes.split(",")]
    meta = train_judge(svc.answerer, train_rows, _rows("dev", exclude), args.out,
                       svc.index.manifest["model"]["name"], cross=args.cross, cross_options=cross, folds=args.folds,
                       index_note=f"{args.index} ({len(svc.index.chunks)} chunks)", seed=args.seed,
                       fold_answerers=fold_answerers,
                       train_folds=_folds(train_rows, len(fold_answerers)) if fold_answerers else None)
    print(json.dumps(meta["training"] | {"calibration": meta["calibration"]}, indent=1))
    return 0
