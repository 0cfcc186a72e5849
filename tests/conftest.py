"""Shared fixtures for the indexer, service and eval tests.

Everything here works with no network: the offline switches are set before anything imports
unstructured, transformers or sentence-transformers.
"""

from __future__ import annotations

import os

for _name in ("DO_NOT_TRACK", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "UNSTRUCTURED_DISABLE_NOTICE"):
    os.environ.setdefault(_name, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import shutil  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import pytest  # noqa: E402

from indexer.config import IndexerSettings, default_model  # noqa: E402
from indexer.embed import HashingEncoder  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
FAKE_MODEL = "fake-hashing-64"


# ---------------------------------------------------------------- paths


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def corpus_dir(repo_root: Path) -> Path:
    return repo_root / "corpus"


# ---------------------------------------------------------------- encoders and settings


@pytest.fixture
def fake_encoder() -> HashingEncoder:
    """Deterministic bag-of-words encoder named "fake-hashing-64": no torch, no model files."""
    return HashingEncoder(dim=64)


@pytest.fixture
def settings_for() -> Callable[..., IndexerSettings]:
    """settings_for(folder, **overrides) -> IndexerSettings for the fake model, no progress bars.

    `folder` is either a base folder (tmp_path) holding, or about to hold, a `corpus`
    subfolder - then corpus is folder/corpus and the index folder/index - or a corpus folder
    itself (e.g. what tiny_corpus returns) - then the index goes beside it: tmp_path/index for
    tmp_path/corpus. Any IndexerSettings field can be overridden, e.g. index_dir=... ; without a
    folder, pass both corpus_dir= and index_dir=.
    """

    def make(folder: Path | None = None, **overrides) -> IndexerSettings:
        values: dict = {"model": FAKE_MODEL, "progress": False}
        if folder is not None:
            folder = Path(folder)
            if (folder / "corpus").is_dir() or not folder.exists() or not any(folder.iterdir()):
                corpus, index = folder / "corpus", folder / "index"
            else:
                corpus = folder
                index = folder.parent / ("index" if folder.name == "corpus" else f"{folder.name}-index")
            values.update(corpus_dir=corpus, index_dir=index)
        elif not {"corpus_dir", "index_dir"} <= overrides.keys():
            raise TypeError("settings_for() needs a folder, or both corpus_dir= and index_dir=")
        values.update(overrides)
        return IndexerSettings(**values)

    return make


# ---------------------------------------------------------------- a small corpus


TINY_PACK_NAME = "hwb-2018-07-26-pack.txt"

TINY_PACK = """\
HEALTH & WELLBEING BOARD

London Borough of Barnet

THURSDAY 26TH JULY, 2018 AT 9.00 AM

Hendon Town Hall, The Burroughs

## ORDER OF BUSINESS

Item No\tTitle of Report\tPages
1.\tMinutes of the Previous Meeting\t3 - 5
7.\tSome report on community wellbeing\t6 - 9

This page is intentionally left blank

# Decisions of the Health & Wellbeing Board

8 March 2018

Board Members:-

AGENDA ITEM 1

Chairman: Cllr Helena Hart

**6. SCREENING UPDATE (Agenda Item 6):**

The Chairman introduced the item on cancer screening and the vital role it plays in early detection of disease across the borough.

The Board noted that uptake of bowel screening remained below the national target and asked for clearer reporting.

It was **RESOLVED** that:

1. That the Health and Wellbeing Board noted the NHSE report on screening programmes.

2. That NHSE supply details of the availability of sexual health clinics across Barnet.

The meeting finished at 11.40 am

AGENDA ITEM 7

Title\tSome report on community wellbeing
Report of\tDirector of Public Health
Wards\tAll

**Summary**

This report describes the community wellbeing programme and the progress made with local partners over the last year.

**Recommendations**

1. That the Board notes the progress of the community wellbeing programme.

2. That the Board agrees the priorities for the coming year.

## 1. WHY THIS REPORT IS NEEDED

Community wellbeing depends on housing, employment and green spaces as much as on health services.
"""

TINY_MD_NAME = "healthy-weight-notes.md"

TINY_MD = """\
# Healthy Weight Programme Notes

London Borough of Barnet

## Background

The **healthy weight** programme works with schools to promote active travel and healthy eating.

- Daily mile in primary schools
- Water-only schools pilot

## Next steps

Officers will report progress on [the programme](https://example.org/hw) to a future meeting.
"""

TINY_HTML_NAME = "air-quality-briefing.html"

TINY_HTML = """\
<!DOCTYPE html>
<html><head><title>Air quality briefing</title></head>
<body>
<h1>Air Quality Briefing</h1>
<p>City of Westminster</p>
<p>This briefing summarises <b>air quality</b> monitoring near schools and the actions agreed with partners.</p>
<h2>Monitoring results</h2>
<p>Nitrogen dioxide levels fell at most monitoring sites during the year, but three sites still exceed the annual limit.</p>
</body></html>
"""

TINY_METADATA = f"""\
["{TINY_PACK_NAME}"]
title = "Health & Wellbeing Board agenda pack, 26 July 2018"
council = "London Borough of Barnet"
body = "Health & Wellbeing Board"
meeting_date = 2018-07-26
document_type = "agenda_pack"
"""


def write_tiny_corpus(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / TINY_PACK_NAME).write_text(TINY_PACK, encoding="utf-8")
    (folder / TINY_MD_NAME).write_text(TINY_MD, encoding="utf-8")
    (folder / TINY_HTML_NAME).write_text(TINY_HTML, encoding="utf-8")
    (folder / "metadata.toml").write_text(TINY_METADATA, encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def tiny_corpus_factory() -> Callable[[Path], Path]:
    """write_tiny_corpus(folder) -> folder: the tiny_corpus files, for module- or session-scoped fixtures."""
    return write_tiny_corpus


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    """tmp_path/corpus with an agenda-pack-like .txt, a .md, an .html and metadata for the pack only."""
    return write_tiny_corpus(tmp_path / "corpus")


# ---------------------------------------------------------------- a hand-written PDF


def _pdf_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(path: Path, pages: list[list[str]]) -> Path:
    """Write a minimal valid PDF: one page per list of lines, Helvetica text, correct xref offsets."""
    objects: dict[int, bytes] = {}
    font_id = 3
    page_ids: list[int] = []
    next_id = 4
    for lines in pages:
        page_id, content_id = next_id, next_id + 1
        next_id += 2
        page_ids.append(page_id)
        ops = ["BT", "/F1 12 Tf", "72 720 Td"]
        for k, line in enumerate(lines):
            if k:
                ops.append("0 -28 Td")  # a blank line's gap, so each line is its own paragraph
            ops.append(f"({_pdf_string(line)}) Tj")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        objects[content_id] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"
        objects[page_id] = (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> /Contents {content_id} 0 R >>"
        ).encode()
    objects[1] = b"<< /Type /Catalog /Pages 2 0 R >>"
    kids = " ".join(f"{p} 0 R" for p in page_ids)
    objects[2] = f"<< /Type /Pages /Kids [{kids}] /Count {len(page_ids)} >>".encode()
    objects[font_id] = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: dict[int, int] = {}
    for obj_id in range(1, next_id):
        offsets[obj_id] = len(out)
        out += f"{obj_id} 0 obj\n".encode() + objects[obj_id] + b"\nendobj\n"
    xref_at = len(out)
    out += f"xref\n0 {next_id}\n".encode() + b"0000000000 65535 f \n"
    for obj_id in range(1, next_id):
        out += f"{offsets[obj_id]:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {next_id} /Root 1 0 R >>\nstartxref\n{xref_at}\n%%EOF\n".encode()
    path.write_bytes(bytes(out))
    return path


TWO_PAGE_PDF = [
    [
        "Screening Programmes Briefing",
        "The Board noted the report on cancer screening programmes across the borough.",
    ],
    [
        "Healthy Weight",
        "The Board discussed the whole system approach to healthy weight in children.",
    ],
]


@pytest.fixture
def pdf_factory() -> Callable[[Path, list[list[str]]], Path]:
    """make_pdf(path, pages): a hand-written PDF (no reportlab needed)."""
    return make_pdf


@pytest.fixture
def two_page_pdf(tmp_path: Path) -> Path:
    """A hand-written 2-page PDF: page 1 about screening, page 2 about healthy weight."""
    return make_pdf(tmp_path / "two-page-briefing.pdf", TWO_PAGE_PDF)


# ---------------------------------------------------------------- the real corpus, parsed once


# unstructured needs ~15 s for the January 2019 pack alone; it is parsed in a second process
# while the tests that need the other files run, so the fast suite stays near a minute.
_PARSE_IN_BACKGROUND = ("barnet-hwb-2019-01-17-agenda-pack.txt",)

_PARSE_SCRIPT = """
import pickle, sys
from pathlib import Path
from indexer.discover import discover
from indexer.parse import parse
corpus, name, out = sys.argv[1:4]
source = next(s for s in discover(Path(corpus)) if s.path.name == name)
doc = parse(source)
Path(out + ".part").write_bytes(pickle.dumps(doc))
Path(out + ".part").rename(out)
"""


def _offline_env(repo_root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(repo_root), env.get("PYTHONPATH", "")) if p)
    for name in ("DO_NOT_TRACK", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "UNSTRUCTURED_DISABLE_NOTICE"):
        env.setdefault(name, "1")
    return env


@pytest.fixture(scope="session")
def parsed_corpus(corpus_dir: Path, repo_root: Path, tmp_path_factory: pytest.TempPathFactory):
    """parsed_corpus(file_name) -> (SourceFile, ParsedDocument, Structure), parsed once per session.

    The result is exactly what indexer.parse.parse and indexer.structure.structure return for
    the file with its corpus/metadata.toml entry. The slowest pack is parsed in a background
    process (falling back to parsing here if that fails).
    """
    import pickle
    import subprocess
    import sys

    from indexer.discover import discover
    from indexer.parse import parse
    from indexer.structure import structure

    sources = {s.path.name: s for s in discover(corpus_dir)}
    cache: dict[str, tuple] = {}
    background: dict[str, tuple[subprocess.Popen, Path]] = {}
    workdir = tmp_path_factory.mktemp("parsed-corpus")
    for name in _PARSE_IN_BACKGROUND:
        if name in sources:
            out = workdir / f"{name}.pickle"
            with (workdir / f"{name}.log").open("wb") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-c", _PARSE_SCRIPT, str(corpus_dir), name, str(out)],
                    cwd=repo_root, env=_offline_env(repo_root),
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                )
            background[name] = (proc, out)

    def from_background(name: str):
        proc, out = background.pop(name)
        try:
            proc.wait(timeout=900)
            doc = pickle.loads(out.read_bytes()) if proc.returncode == 0 and out.exists() else None
        except Exception:
            proc.kill()
            proc.wait()
            doc = None
        if doc is not None and doc.sha256 != sources[name].sha256:
            doc = None
        return doc

    def get(name: str):
        if name not in cache:
            src = sources[name]
            doc = from_background(name) if name in background else None
            if doc is None:
                doc = parse(src)
            cache[name] = (src, doc, structure(doc, src.meta))
        return cache[name]

    yield get

    for proc, _ in background.values():  # not needed by the tests that ran
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------- the four Kent County Council PDFs


# Published Kent Cabinet papers, kept beside the repository (never committed): ../shared/council_pdfs.
KENT_PDFS = REPO_ROOT.parent / "shared" / "council_pdfs"
KENT_NAMES = {
    "appendix": "cabinet__2025-01-30__24-00115 - Appendix B - KCC ICS priorities measures.pdf",
    "eqia": "cabinet__2025-01-30__24-00115 - EqIA.pdf",
    "agenda": "cabinet__2025-01-30__Agenda frontsheet 30th-Jan-2025 10.00 Cabinet.pdf",
    "pack": "cabinet__2025-03-13__pack__Public reports pack 13th-Mar-2025 15.00 Cabinet.pdf",
}


@pytest.fixture(scope="session")
def kent_pdfs() -> dict[str, Path]:
    """{"appendix" | "eqia" | "agenda" | "pack": path} of the four Kent PDFs; skips when they are absent."""
    paths = {key: KENT_PDFS / name for key, name in KENT_NAMES.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        pytest.skip(f"Kent PDFs not available: {missing[0]}")
    return paths


@pytest.fixture(scope="session")
def kent_parsed(kent_pdfs):
    """{sha256: ParsedDocument} of the four Kent PDFs, parsed once per session (about 14 s, most
    of it the 31-page appendix), for tests that would otherwise parse them again."""
    import hashlib

    from indexer.parse import parse
    from indexer.records import SourceFile

    out = {}
    for key, path in kent_pdfs.items():
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        out[sha] = parse(SourceFile(path=path, doc_id=key, sha256=sha, meta=None))
    return out


# ---------------------------------------------------------------- the real index


@pytest.fixture(scope="session")
def real_index(tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path) -> Path:
    """The bundled corpus indexed once per session with the REAL shipped model (the tuned encoder in
    models/encoder/, so the service tests also run the shipped judge; about three minutes).

    Returns the index folder. Service tests load it with store.load_index / the service's app.
    A failed build fails every test that asks for it with the build's own error.
    """
    from indexer import pipeline
    from indexer.store import current_build, load_index

    index_dir = tmp_path_factory.mktemp("real-index") / "index"
    # The model is named explicitly so a BOARDPAPERS_MODEL in the environment cannot swap it.
    settings = IndexerSettings(corpus_dir=corpus_dir, index_dir=index_dir, model=default_model(), progress=False)
    try:
        report = pipeline.build(settings)
    except Exception as e:  # say clearly that the shared fixture failed, not the test body
        shutil.rmtree(index_dir, ignore_errors=True)
        pytest.fail(f"building the real index of {corpus_dir} failed: {type(e).__name__}: {e}", pytrace=False)
    if current_build(index_dir) is None or report.chunks == 0:
        pytest.fail(f"the real index build at {index_dir} produced no usable build ({report})", pytrace=False)
    try:
        load_index(index_dir, expect_model=settings.model)
    except Exception as e:
        pytest.fail(f"the real index at {index_dir} does not load: {type(e).__name__}: {e}", pytrace=False)
    return index_dir


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test that uses real_index uses the real model: give it the `model` marker."""
    for item in items:
        if "real_index" in getattr(item, "fixturenames", ()) and item.get_closest_marker("model") is None:
            item.add_marker(pytest.mark.model)
