"""`python -m indexer build ...` that stops at a chosen point and waits there to be killed.

    python tests/fault_build.py STAGE MARKER -- build CORPUS --index DIR ...

The build is the real one, in its own process; the only change is that when it reaches STAGE
it writes its pid to MARKER and sleeps, so a test can `kill -9` it at that point and no other.
Stages, in the order a build reaches them:

    parse    a corpus file (the first that is new or changed) is being parsed
    embed    the first batch of chunks is being embedded
    write    half the build's files are written (before the BM25 arrays)
    switch   the build folder is complete, `current` not yet repointed
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def _pause(marker: Path):
    marker.write_text(str(os.getpid()), encoding="utf-8")
    time.sleep(600)  # killed long before
    raise SystemExit("fault_build: not killed")


def _arm(stage: str, marker: Path) -> None:
    from indexer import embed, pipeline, store

    if stage == "parse":
        def parse(*args, **kwargs):
            _pause(marker)

        pipeline.parse = parse
    elif stage == "embed":
        def encode(self, *args, **kwargs):
            _pause(marker)

        embed.HashingEncoder.encode = encode
    elif stage == "write":
        def build(*args, **kwargs):
            _pause(marker)

        store.LexicalIndex.build = classmethod(build)
    elif stage == "switch":
        real_symlink = os.symlink

        def symlink(src, dst, *args, **kwargs):
            if Path(dst).name.startswith(f".{store.CURRENT}-"):
                _pause(marker)
            return real_symlink(src, dst, *args, **kwargs)

        store.os.symlink = symlink
    else:
        raise SystemExit(f"fault_build: unknown stage {stage!r}")


def main() -> int:
    stage, marker, sep, *argv = sys.argv[1:]
    if sep != "--":
        raise SystemExit(__doc__)
    _arm(stage, Path(marker))
    from indexer.__main__ import main as indexer_main

    return indexer_main(argv)


if __name__ == "__main__":
    sys.exit(main())
