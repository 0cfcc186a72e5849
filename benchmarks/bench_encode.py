"""Encoder variants on the same texts, one after another in one process: seconds of CPU and of wall.

    python benchmarks/bench_encode.py [--paragraphs 200] [--sentences 600] [--threads 1]

The texts are the bundled corpus as 1,200-character paragraphs (chunk-like) and its sentences. CPU
seconds (one thread each) are the fair comparison on a shared machine, where wall time depends on what
else runs; both are written to benchmarks/results/encode.json with each variant's cosine to fp32 PyTorch.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

for _n in ("DO_NOT_TRACK", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "UNSTRUCTURED_DISABLE_NOTICE"):
    os.environ.setdefault(_n, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    import tempfile

    import numpy as np

    from benchmarks.bench_build import paragraphs
    from indexer.config import IndexerSettings
    from indexer.embed import VARIANTS, load_encoder

    p = argparse.ArgumentParser()
    p.add_argument("--corpus", type=Path, default=ROOT / "corpus")
    p.add_argument("--paragraphs", type=int, default=200)
    p.add_argument("--sentences", type=int, default=600)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "encode.json")
    args = p.parse_args()
    paras = paragraphs(args.corpus)[: args.paragraphs]
    sents = [s for para in paragraphs(args.corpus) for s in re.split(r"(?<=[.!?])\s+", para) if len(s) > 3]
    sents = sents[: args.sentences]
    model = IndexerSettings().model
    rows, reference = [], {}
    with tempfile.TemporaryDirectory() as cache:
        for variant in VARIANTS:
            enc = load_encoder(model, variant, Path(cache), threads=args.threads)
            if variant == "torch":
                import torch

                torch.set_num_threads(args.threads)
            enc.encode(paras[:8])  # warm-up
            row = {"variant": enc.variant}
            for name, texts in (("paragraphs", paras), ("sentences", sents)):
                c0, w0 = time.process_time(), time.perf_counter()
                vectors = enc.encode(texts, 32)
                row[f"{name}_cpu_seconds"] = round(time.process_time() - c0, 2)
                row[f"{name}_wall_seconds"] = round(time.perf_counter() - w0, 2)
                if variant == "torch":
                    reference[name] = vectors
                cos = np.sum(vectors * reference[name], axis=1)
                row[f"{name}_least_cosine_to_torch"] = round(float(cos.min()), 4)
                row[f"{name}_mean_cosine_to_torch"] = round(float(cos.mean()), 4)
            rows.append(row)
            print(json.dumps(row), flush=True)
    result = {"model": model, "threads": args.threads, "paragraphs": len(paras), "sentences": len(sents),
              "load_average_at_end": os.getloadavg(), "variants": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
