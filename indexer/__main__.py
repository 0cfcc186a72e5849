"""python -m indexer build [CORPUS_DIR] --index DIR | stats --index DIR | sync moderngov --site URL --corpus DIR"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import date
from pathlib import Path

from indexer.config import get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m indexer", description="Index council board papers.")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build or refresh the index of a corpus folder")
    b.add_argument("corpus", nargs="?", type=Path, help="corpus folder (default: $BOARDPAPERS_CORPUS_DIR or corpus)")
    b.add_argument("--index", type=Path, help="index folder (default: $BOARDPAPERS_INDEX_DIR or .index)")
    b.add_argument("--model", help="embedding model name or folder (default: the tuned model in models/encoder/ if present, else the bundled all-MiniLM-L6-v2)")
    b.add_argument("--no-progress", action="store_true", help="no progress bars")
    b.add_argument("--variant", choices=("torch", "onnx", "onnx-int8"),
                   help="how the model runs: fp32 PyTorch, fp32 or int8 onnxruntime "
                        "(default: $BOARDPAPERS_ENCODER_VARIANT or torch)")
    b.add_argument("--ray", action="store_true",
                   help="parse and embed on Ray (local Ray, or the cluster at $RAY_ADDRESS); needs the ray extra")
    s = sub.add_parser("stats", help="print what an index holds")
    s.add_argument("--index", type=Path)
    y = sub.add_parser("sync", help="fetch papers from a council's website into a corpus folder")
    sources = y.add_subparsers(dest="source", required=True)
    m = sources.add_parser("moderngov", help="a Modern.Gov site (most UK councils' committee papers)")
    m.add_argument("--site", required=True, metavar="URL", help="the site's address, e.g. https://democracy.kent.gov.uk")
    m.add_argument("--committee", action="extend", nargs="+", default=[], metavar="NAME|ID",
                   help="committees to sync, by name or id (default: all)")
    m.add_argument("--from", dest="date_from", type=_day, metavar="DATE", help="first meeting date, YYYY-MM-DD (default: a year ago)")
    m.add_argument("--to", dest="date_to", type=_day, metavar="DATE", help="last meeting date, YYYY-MM-DD (default: a month ahead)")
    m.add_argument("--corpus", type=Path, metavar="DIR", help="corpus folder (default: $BOARDPAPERS_CORPUS_DIR or corpus)")
    m.add_argument("--council", help="the council's name, for every paper (default: read from the papers)")
    m.add_argument("--recheck", action="store_true", help="ask the site whether papers fetched before have changed")
    args = parser.parse_args(argv)

    settings = get_settings(
        corpus_dir=getattr(args, "corpus", None),
        index_dir=getattr(args, "index", None),
        model=getattr(args, "model", None),
        encoder_variant=getattr(args, "variant", None),
        progress=False if getattr(args, "no_progress", False) else None,
    )
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if args.command == "build":
        return _build(settings, getattr(args, "ray", False))
    if args.command == "sync":
        return _sync(settings, args)
    return _stats(settings)


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: write YYYY-MM-DD") from None


def _sync(settings, args) -> int:
    from indexer.sync import SyncError, sync_moderngov

    try:
        report = sync_moderngov(settings, args.site, settings.corpus_dir, args.committee, args.date_from, args.date_to,
                                args.council, args.recheck)
    except SyncError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cancelled = f" ({len(report.cancelled)} cancelled)" if report.cancelled else ""
    print(f"synced {report.site} into {report.folder}: {_n(len(report.committees), 'committee')}, "
          f"{_n(report.meetings, 'meeting')}{cancelled}; {_n(len(report.fetched), 'paper')} fetched, "
          f"{report.unchanged} unchanged, {_n(len(report.failed), 'problem')}; {_n(report.requests, 'request')}")
    for name in report.fetched:
        print(f"fetched: {name}")
    for name in report.relabelled:
        print(f"metadata updated: {name}")
    for meeting in report.cancelled:
        print(f"cancelled: {meeting}")
    for what, why in report.failed:
        print(f"problem: {what}: {why}")
    if report.missing:
        print(f"note: {_n(report.missing, 'paper')} that answered 404 before not asked for again")
    if report.items_without_papers:
        print(f"note: {_n(report.items_without_papers, 'agenda item')} with no papers")
    if report.listed_twice:
        print(f"note: {_n(report.listed_twice, 'paper')} listed more than once, fetched once")
    if report.stopped:
        print(f"stopped: {report.stopped}", file=sys.stderr)
        return 1
    return 0


def _build(settings, on_ray: bool = False) -> int:
    from indexer.discover import CorpusError
    from indexer.embed import EncoderError
    from indexer.pipeline import BuildError, build

    if on_ray:
        try:
            from indexer.distributed import build
        except ImportError as e:
            print(f"error: --ray needs Ray ({e}): pip install -e '.[ray]'", file=sys.stderr)
            return 2
    try:
        report = build(settings)
    except (CorpusError, BuildError, EncoderError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if report.up_to_date:
        print(f"index at {settings.index_dir} is up to date: {report.documents} documents, "
              f"{report.chunks} chunks, nothing embedded ({report.seconds:.1f}s)")
    else:
        print(f"indexed {report.documents} documents into {report.chunks} chunks and {report.decisions} "
              f"decision records at {settings.index_dir}: {report.reparsed} parsed, {report.embedded} chunks "
              f"and {report.embedded_sentences} sentences embedded, {report.reused_vectors} chunks reused ({report.seconds:.1f}s)")
    if report.published:
        p = report.published
        print(f"published to Milvus {p['uri']} as {p['alias']} ({p['collection']}): {p['mode']}, "
              f"{p['written']} chunks written, {p['deleted']} deleted")
    for doc_id, notes in report.notes.items():
        print(f"note: {doc_id}: {'; '.join(notes)}")
    for s in report.skipped:
        print(f"skipped: {s.path}: {s.reason}")
    for d in report.duplicates:
        print(f"duplicate: {d.path}: same bytes as {d.same_as}, indexed once")
    return 0


def _stats(settings) -> int:
    from indexer.store import IndexError_, read_manifest

    try:
        manifest = read_manifest(settings.index_dir)
    except IndexError_ as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if manifest is None:
        print(f"error: no index at {settings.index_dir}", file=sys.stderr)
        return 2
    counts = manifest["counts"]
    print(f"index:      {settings.index_dir}")
    print(f"built at:   {manifest['built_at']}")
    print(f"model:      {manifest['model']['name']} (dim {manifest['model']['dim']}, max {manifest['model']['max_tokens']} tokens), "
          f"run by {manifest['model'].get('variant', 'torch')}")
    print(f"documents:  {counts['documents']}")
    print(f"chunks:     {counts['chunks']}")
    print(f"decisions:  {counts['decisions']}")
    print(f"tokens:     {counts['tokens']} ({manifest['chunking']['tiktoken_encoding']})")
    for doc_id, d in sorted(manifest["documents"].items()):
        print(f"  {doc_id}: {d['chunks']} chunks, {d['decisions']} decisions")
    for d in manifest.get("duplicates", []):
        print(f"duplicate:  {d['path']} (same bytes as {d['same_as']})")
    print(f"skipped:    {len(manifest['skipped'])}")
    for s in manifest["skipped"]:
        print(f"  {s['path']}: {s['reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
