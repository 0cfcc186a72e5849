"""Copy a council's papers from its Modern.Gov site into a corpus folder, with their metadata.

    CORPUS/<site>/<committee>__<YYYY-MM-DD>__[pack__|minutes__]<file name>   the paper, as published
    CORPUS/<site>/<that name>.meta.toml                                      what the site says of it
    CORPUS/<site>/.sync-state.json                                           what was fetched, by URL

The file names follow the shape the pipeline already reads (`<body>__<date>__...`), and the
sidecar (indexer.discover.SIDECAR_SUFFIX) gives the build the council, committee, meeting date,
agenda item and source URL, so nothing has to be guessed from the front sheet.

Incremental: a paper whose URL was fetched before is not requested again (Modern.Gov gives a
revised paper a new attachment), unless `recheck` asks the site, conditionally, whether it
changed; its sidecar is rewritten when the agenda says something new about it. A paper that
answered 404 is not asked for again until the site lists it differently. Nothing is left half
written: each file goes to a hidden temporary name first and is renamed into place, the
sidecar before its paper, and the state after both; a run that stops (the site goes down, the
request cap) keeps what it finished and the next run carries on.

Entry point: sync_moderngov(settings, site, corpus_dir, ...) -> SyncReport.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

from indexer.config import IndexerSettings
from indexer.dates import format_date
from indexer.discover import sidecar_path
from indexer.fetch import Fetcher, FetchError, RequestCapReached
from indexer.moderngov import Committee, ModernGovSite, Paper, SiteError
from indexer.parse import SUPPORTED_SUFFIXES

log = logging.getLogger(__name__)

STATE_FILE = ".sync-state.json"
STATE_VERSION = 1
_TYPES = {"application/pdf": ".pdf",
          "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx"}
_GONE = (404, 410)


class SyncError(Exception):
    """The sync cannot start or must stop: said to the user in one line, nothing half written."""


@dataclass
class SyncReport:
    site: str
    folder: Path
    committees: list[str] = field(default_factory=list)
    meetings: int = 0
    cancelled: list[str] = field(default_factory=list)  # "Cabinet, 20 February 2025"
    fetched: list[str] = field(default_factory=list)  # file names written, new or changed
    relabelled: list[str] = field(default_factory=list)  # sidecars rewritten, the paper unchanged
    unchanged: int = 0
    missing: int = 0  # answered 404 in an earlier run and not asked for again
    failed: list[tuple[str, str]] = field(default_factory=list)  # (URL or what, why)
    items_without_papers: int = 0
    listed_twice: int = 0
    requests: int = 0
    stopped: str | None = None  # why the run ended early; the next run carries on

    @property
    def complete(self) -> bool:
        return self.stopped is None


def sync_moderngov(settings: IndexerSettings, site_url: str, corpus_dir: Path, committees: list[str] | None = None,
                   date_from: date | None = None, date_to: date | None = None, council: str | None = None,
                   recheck: bool = False, fetcher: Fetcher | None = None) -> SyncReport:
    """Fetch what is new on a Modern.Gov site into corpus_dir/<site>/.

    Args:
        settings: the sync_* politeness settings.
        site_url: the site's address, e.g. https://democracy.kent.gov.uk (a sub-path is kept).
        corpus_dir: the corpus folder the build will index.
        committees: names or ids to sync (any case); all committees when empty.
        date_from, date_to: the meetings to sync, by date (inclusive).
        council: the council's name, for every paper's metadata; detected from the papers when None.
        recheck: ask the site whether papers fetched before have changed (conditional requests).
        fetcher: a ready Fetcher (tests pass one with a fake transport or clock).

    Raises:
        SyncError: the site is down or is not a Modern.Gov site, or no committee matches.
    """
    if date_from and date_to and date_from > date_to:
        raise SyncError(f"--from {date_from} is after --to {date_to}")
    own = fetcher is None
    fetcher = fetcher or Fetcher(settings)
    try:
        return _sync(ModernGovSite(site_url, fetcher), corpus_dir, committees or [], date_from, date_to,
                     council, recheck)
    finally:
        if own:
            fetcher.close()


def _sync(site: ModernGovSite, corpus_dir: Path, wanted: list[str], date_from: date | None,
          date_to: date | None, council: str | None, recheck: bool) -> SyncReport:
    folder = corpus_dir / site_folder(site.url)
    report = SyncReport(site.url, folder)
    try:
        chosen = _choose(site.committees(), wanted)
    except (SiteError, RequestCapReached) as e:
        raise SyncError(str(e)) from e
    report.committees = [c.title for c in chosen]
    state = _State.load(folder, site.url)
    # By default the last year's meetings and the next month's, whose agendas are out.
    date_from = date_from or date.today() - timedelta(days=365)
    date_to = date_to or date.today() + timedelta(days=31)
    try:
        for committee in chosen:
            try:
                meetings = site.meetings(committee, date_from, date_to)
            except (FetchError, SiteError) as e:
                _listing_failed(e, f"{committee.title}'s meetings", report)
                continue
            for meeting in meetings:
                report.meetings += 1
                where = f"{committee.title}, {format_date(meeting.date)}"
                if meeting.cancelled:
                    report.cancelled.append(where)
                    continue
                try:
                    found = site.papers(meeting, state.attachments())
                except (FetchError, SiteError) as e:
                    _listing_failed(e, where, report)
                    continue
                report.items_without_papers += found.items_without_papers
                report.listed_twice += found.listed_twice
                report.failed += [(where, problem) for problem in found.problems]
                for paper in found.papers:
                    _one(site.fetcher, paper, council, folder, state, recheck, report)
    except RequestCapReached as e:
        report.stopped = f"{e}; run the sync again to carry on"
    except FetchError as e:  # the site stopped answering part way
        report.stopped = f"cannot reach {site.url} ({e.reason}); what was fetched is kept, run the sync again to carry on"
    except OSError as e:
        raise SyncError(f"cannot write into {folder}: {e}; what was written before is whole") from e
    report.requests = site.fetcher.requests
    return report


def _listing_failed(e: FetchError | SiteError, where: str, report: SyncReport) -> None:
    """One committee's or meeting's listing could not be read: said, and the sync goes on,
    unless the site cannot be reached at all."""
    if isinstance(e, FetchError) and e.status is None:
        raise e
    report.failed.append((where, str(e)))


def site_folder(url: str) -> str:
    """The folder a site's papers go into: its host, and its path when it has one."""
    parts = urlsplit(url)
    name = "_".join(x for x in (parts.netloc.lower(), parts.path.strip("/")) if x)
    return re.sub(r"[^a-z0-9.-]+", "_", name.lower()).strip("._") or "site"


def _choose(committees: list[Committee], wanted: list[str]) -> list[Committee]:
    if not wanted:
        return committees
    chosen = []
    for w in wanted:
        match = [c for c in committees if c.id == w.strip() or c.title.lower() == w.strip().lower()]
        if not match:
            names = ", ".join(f"{c.title} ({c.id})" for c in committees[:25])
            more = f" and {len(committees) - 25} more" if len(committees) > 25 else ""
            raise SiteError(f"no committee {w!r} on this site; it has: {names}{more}")
        chosen += [c for c in match if c not in chosen]
    return chosen


# ---------------------------------------------------------------- one paper


def _one(fetcher: Fetcher, paper: Paper, council: str | None, folder: Path, state: "_State", recheck: bool,
         report: SyncReport) -> None:
    known = state.documents.get(paper.url)
    gone = state.gone.get(paper.url)
    if gone and not recheck and not _republished(gone, paper):
        report.missing += 1  # answered 404 before, and listed the same way since
        return
    if known and not recheck and not _republished(known, paper):
        _keep(folder / known["path"], paper, council, report)
        return
    headers = {}
    if known and (known.get("etag") or known.get("last_modified")):
        headers = {k: v for k, v in (("If-None-Match", known.get("etag")),
                                      ("If-Modified-Since", known.get("last_modified"))) if v}
    try:
        r = fetcher.get(paper.url, headers=headers or None)
    except FetchError as e:
        if e.status is None:
            raise
        report.failed.append((paper.url, e.reason))
        if e.status in _GONE:
            state.gone[paper.url] = {"status": e.status, "published": paper.published,
                                     "attachment_id": paper.attachment_id}
            state.save()
        return
    if known and (r.status == 304 or hashlib.sha256(r.content).hexdigest() == known["sha256"]):
        _keep(folder / known["path"], paper, council, report)
        return
    suffix = _suffix(paper.file_name, r.content_type, r.content)
    if suffix is None:
        report.failed.append((paper.url, f"not a document the index reads (content type {r.content_type or 'none'})"))
        return
    name = known["path"] if known else _free_name(folder, state, paper, suffix)
    path = folder / name
    folder.mkdir(parents=True, exist_ok=True)
    _write_atomic({sidecar_path(path): sidecar_text(paper, council).encode("utf-8"), path: r.content})
    state.documents[paper.url] = {
        "path": name, "sha256": hashlib.sha256(r.content).hexdigest(), "etag": r.etag,
        "last_modified": r.last_modified, "published": paper.published, "attachment_id": paper.attachment_id,
        "meeting_id": paper.meeting.id, "fetched_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    state.gone.pop(paper.url, None)
    state.save()
    log.info("fetched %s (%d bytes) from %s", name, len(r.content), paper.url)
    report.fetched.append(name)


def _keep(path: Path, paper: Paper, council: str | None, report: SyncReport) -> None:
    """A paper fetched before and unchanged: only its sidecar is rewritten, if the agenda now says
    something else of it (an item renumbered or retitled)."""
    side = sidecar_path(path)
    text = sidecar_text(paper, council)
    if not path.is_file() or (side.is_file() and side.read_text(encoding="utf-8") == text):
        # Unchanged; or the paper was deleted by hand, and is neither fetched back nor described.
        report.unchanged += 1
        return
    _write_atomic({side: text.encode("utf-8")})
    report.relabelled.append(path.name)


def _republished(known: dict, paper: Paper) -> bool:
    # A publication date the site gives and that differs from the one fetched: a new version.
    return paper.published is not None and known.get("published") not in (None, paper.published)


def _suffix(file_name: str, content_type: str, content: bytes) -> str | None:
    suffix = Path(file_name).suffix.lower()
    if suffix in SUPPORTED_SUFFIXES and suffix not in (".html", ".htm"):
        return suffix
    kind = content_type.split(";")[0].strip().lower()
    if kind in _TYPES:
        return _TYPES[kind]
    if content.startswith(b"%PDF"):
        return ".pdf"  # mgConvert2PDF.aspx and the like, served with a generic type
    return None  # an HTML page where a paper should be is an error or sign-in page, not a paper


def _free_name(folder: Path, state: "_State", paper: Paper, suffix: str) -> str:
    """<committee>__<date>__[pack__|minutes__]<file name>, unique in the folder."""
    slug = re.sub(r"[^a-z0-9]+", "-", paper.meeting.committee.title.lower()).strip("-") or "committee"
    marker = {"agenda_pack": "pack__", "minutes": "minutes__"}.get(paper.document_type, "")
    stem = Path(paper.file_name).stem if Path(paper.file_name).suffix.lower() == suffix else paper.file_name
    if not stem or stem.lower().endswith((".aspx", ".ashx")):
        stem = paper.title
    # No folders, no hidden names, nothing a file system refuses; long names cut, the suffix kept.
    stem = re.sub(r'[\x00-\x1f/\\:*?"<>|]+', " ", stem).strip(" .")[:120] or "paper"
    base = f"{slug}__{paper.meeting.date.isoformat()}__{marker}{stem}"
    taken = {d["path"] for d in state.documents.values()}
    # Two papers of one meeting with one file name: the second is told apart by its attachment id.
    tags = ([""] + ([f" ({paper.attachment_id})"] if paper.attachment_id else [])
            + [f" ({n})" for n in range(2, 1000)])
    return next(name for tag in tags if (name := f"{base}{tag}{suffix}") not in taken and not (folder / name).exists())


def sidecar_text(paper: Paper, council: str | None) -> str:
    """The paper's metadata as discover reads it (indexer.discover.load_sidecar)."""
    values = {
        "title": paper.title,
        "council": council,
        "body": paper.meeting.committee.title,
        "meeting_date": paper.meeting.date,
        "document_type": paper.document_type,
        "agenda_item": paper.agenda_item,
        "agenda_title": paper.agenda_title,
        "source_url": paper.url,
    }
    lines = ["# Written by `python -m indexer sync moderngov` from the council's Modern.Gov site.",
             "# A metadata.toml entry for this file, written by hand, takes precedence."]
    lines += [f"{k} = {_toml(v)}" for k, v in values.items() if v is not None]
    lines += ["", "[moderngov]", f"committee_id = {_toml(paper.meeting.committee.id)}",
              f"meeting_id = {_toml(paper.meeting.id)}"]
    if paper.attachment_id:
        lines.append(f"attachment_id = {_toml(paper.attachment_id)}")
    return "\n".join(lines) + "\n"


def _toml(value) -> str:
    if isinstance(value, date):
        return value.isoformat()  # a TOML local date
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a TOML basic string


def _write_atomic(files: dict[Path, bytes]) -> None:
    """Write every file under a hidden temporary name (discover skips those), then rename them
    into place in the order given: a full disk or a crash while writing leaves none of them."""
    tmps = {path: path.with_name(f".tmp-{os.getpid()}-{path.name}") for path in files}
    try:
        for path, data in files.items():
            tmps[path].write_bytes(data)
        for path, tmp in tmps.items():
            os.replace(tmp, path)
    finally:
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------- state


@dataclass
class _State:
    path: Path
    site: str
    documents: dict[str, dict]  # URL -> path, sha256, etag, last_modified, published, attachment_id, ...
    gone: dict[str, dict]  # URL -> status, published: answered 404/410

    @classmethod
    def load(cls, folder: Path, site: str) -> "_State":
        path = folder / STATE_FILE
        if not path.is_file():
            return cls(path, site, {}, {})
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise SyncError(f"{path} is unreadable ({e}); move it aside to fetch everything again") from e
        if raw.get("version") != STATE_VERSION:
            raise SyncError(f"{path} was written by another version of the sync; move it aside to fetch everything again")
        return cls(path, site, raw.get("documents", {}), raw.get("gone", {}))

    def attachments(self) -> dict[str, str]:
        """Attachment id -> URL of the papers seen before, so their URLs are not asked for again."""
        return {d["attachment_id"]: url for entries in (self.documents, self.gone)
                for url, d in entries.items() if d.get("attachment_id")}

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"version": STATE_VERSION, "site": self.site, "documents": self.documents, "gone": self.gone}
        _write_atomic({self.path: json.dumps(data, indent=1, ensure_ascii=False, sort_keys=True).encode("utf-8")})
