"""python -m service --index DIR [--host HOST --port PORT]"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from indexer import offline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service", description="Serve search over a built index.")
    parser.add_argument("--index", type=Path, help="index folder (default: $BOARDPAPERS_INDEX_DIR or .index)")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    args = parser.parse_args(argv)
    offline.configure()

    from service.config import ServiceSettings

    overrides = {k: v for k, v in {"index_dir": args.index, "host": args.host, "port": args.port}.items() if v is not None}
    settings = ServiceSettings(**overrides)
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")

    from indexer.embed import EncoderError, load_encoder
    from indexer.store import IndexError_, encoder_cache_dir, load_index
    from service.app import create_app

    try:
        # Load before serving so a wrong index is one clear line, not a failed startup trace.
        index = load_index(settings.index_dir)
        # Queries run the way the index's vectors were made (its manifest's variant).
        encoder = load_encoder(settings.model or index.manifest["model"]["name"],
                               index.manifest["model"].get("variant", "torch"), encoder_cache_dir(settings.index_dir))
        index = load_index(settings.index_dir, expect_model=encoder.name, expect_dim=encoder.dim) \
            if settings.model else index
    except (IndexError_, EncoderError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    import uvicorn

    uvicorn.run(create_app(settings, encoder=encoder, index=index), host=settings.host, port=settings.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
