"""python -m service --index DIR [--host HOST --port PORT]"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from indexer import offline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service", description="Serve search over a built index.")
    parser.add_argument("--index", type=Path, help="index folder (default: $BOARDPAPERS_INDEX_DIR or .index)")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    args = parser.parse_args(argv)
    offline.switches()  # the service never parses: no unstructured, no spaCy

    from service.config import ServiceSettings

    overrides = {k: v for k, v in {"index_dir": args.index, "host": args.host, "port": args.port}.items() if v is not None}
    settings = ServiceSettings(**overrides)
    from service import logs

    logs.configure(settings.log_level, settings.log_format)

    from indexer.embed import EncoderError
    from indexer.store import IndexError_, load_index
    from service.app import create_app
    from service.reload import query_encoder

    encoder = index = None
    try:
        # Load before serving so a wrong index is one clear line, not a failed startup trace.
        index = load_index(settings.index_dir)
        # Queries run the way the index's vectors were made (its manifest's variant).
        encoder = query_encoder(settings, index.manifest)
        index = load_index(settings.index_dir, expect_model=encoder.name, expect_dim=encoder.dim) \
            if settings.model else index
    except (IndexError_, EncoderError) as e:
        if not (settings.watch_index and isinstance(e, IndexError_)):
            print(f"error: {e}", file=sys.stderr)
            return 2
        encoder = index = None  # watching: start not ready, and load the first build when it appears
    import uvicorn

    # log_config=None keeps the JSON logging set up above; our middleware writes the access line.
    uvicorn.run(create_app(settings, encoder=encoder, index=index), host=settings.host, port=settings.port,
                log_config=None, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
