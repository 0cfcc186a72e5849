"""Build benchmark: a cold build of the bundled corpus into a temp dir, then an incremental rebuild.

    python benchmarks/bench_build.py [--corpus corpus] [--out benchmarks/results/build.json]

Prints seconds, chunks, chunks/second and peak RSS for each build; writes a JSON summary.
The incremental rebuild touches one document (a line appended to a copy of the corpus) so it
re-parses and re-embeds only that document; an unchanged-corpus rebuild is timed as well.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

for _n in ("DO_NOT_TRACK", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "UNSTRUCTURED_DISABLE_NOTICE"):
    os.environ.setdefault(_n, "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed_build(corpus: Path, index: Path, label: str) -> dict:
    from indexer.config import IndexerSettings
    from indexer.pipeline import build

    t0 = time.perf_counter()
    rep = build(IndexerSettings(corpus_dir=corpus, index_dir=index, progress=False))
    secs = time.perf_counter() - t0
    row = {"build": label, "seconds": round(secs, 2), "documents": rep.documents, "chunks": rep.chunks,
           "reparsed": rep.reparsed, "embedded": rep.embedded, "reused_vectors": rep.reused_vectors,
           "embedded_sentences": rep.embedded_sentences,
           "up_to_date": rep.up_to_date, "chunks_per_second": round(rep.chunks / secs, 1) if secs else None,
           "embedded_per_second": round(rep.embedded / secs, 1) if secs and rep.embedded else None,
           "peak_rss_mb": round(peak_rss_mb(), 1)}
    print(f"{label:12s} {row['seconds']:8.2f}s  chunks={rep.chunks}  embedded={rep.embedded}  "
          f"sentences embedded={rep.embedded_sentences}  reparsed={rep.reparsed}  chunks/s={row['chunks_per_second']}  peak RSS={row['peak_rss_mb']} MB", flush=True)
    return row


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--corpus", type=Path, default=ROOT / "corpus")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "build.json")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
        tmp = Path(tmp)
        corpus = tmp / "corpus"
        shutil.copytree(args.corpus, corpus)
        index = tmp / "index"
        rows = [timed_build(corpus, index, "cold")]
        rows.append(timed_build(corpus, index, "unchanged"))
        victim = sorted(f for f in corpus.iterdir() if f.suffix in (".txt", ".md"))[0]
        with victim.open("a", encoding="utf-8") as fh:
            fh.write("\n\nA paragraph added for the incremental build benchmark.\n")
        rows.append(timed_build(corpus, index, "incremental"))
        rows[-1]["changed_file"] = victim.name
    result = {"cpu_count": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine(),
              "note": "peak RSS is the process high-water mark so far (cumulative across builds)", "builds": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
