"""What checking an index's checksums costs at load: load_index with and without sha256 verification.

    python benchmarks/bench_verify.py --index .index [--repeat 5]

Prints the build's size, the median load time with verify=True and verify=False (sizes are
checked in both), and the time to hash the files alone. Run it on a warm page cache (it loads
once first): the service loads at start, usually right after a build wrote the files.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--index", type=Path, default=ROOT / ".index")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from indexer import store

    store.load_index(args.index)  # warm the page cache and the imports
    build = store.current_build(args.index)
    files = store.read_manifest(args.index)["files"]
    size = sum(f["bytes"] for f in files.values())

    def timed(fn) -> float:
        runs = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - t0)
        return statistics.median(runs)

    hashing = timed(lambda: [store._sha256(build / rel) for rel in files])
    verified = timed(lambda: store.load_index(args.index, verify=True))
    sizes_only = timed(lambda: store.load_index(args.index, verify=False))
    print(f"build {build.name}: {len(files)} files, {size / 1e6:.1f} MB")
    print(f"sha256 of every file:      {hashing * 1000:7.0f} ms ({size / 1e6 / hashing:.0f} MB/s)")
    print(f"load_index, verify=True:   {verified * 1000:7.0f} ms")
    print(f"load_index, verify=False:  {sizes_only * 1000:7.0f} ms (sizes only)")
    print(f"verification adds {100 * (verified - sizes_only) / sizes_only:.0f}% to a load (median of {args.repeat})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
