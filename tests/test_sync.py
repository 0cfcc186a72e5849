"""`python -m indexer sync moderngov` against a fake Modern.Gov site on loopback (tests/fake_moderngov.py).

The site is Kent's Cabinet of 30 January and 13 March 2025 with the awkward cases a real site
has; its papers are small PDFs written here, or the four published Kent PDFs for the last test.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import tomllib
from datetime import date
from pathlib import Path

import pytest
from conftest import KENT_NAMES, make_pdf
from fake_moderngov import ITEM_8, Doc, FakeMeeting, FakeSite, Item, Linked, Server, doc_path, kent_site

from indexer import pipeline, store
from indexer.config import IndexerSettings
from indexer.discover import load_sidecar
from indexer.fetch import Fetcher, FetchError
from indexer.sync import STATE_FILE, SyncError, site_folder, sync_moderngov

FROM, TO = date(2025, 1, 1), date(2025, 3, 31)
KENT = "Kent County Council"
SMALL_PAPERS = {
    "agenda": [["AGENDA", "CABINET", "Thursday, 30th January, 2025, at 10.00 am", "Kent County Council",
                "1. Apologies", f"8. {ITEM_8}"]],
    "pack": [["AGENDA", "CABINET", "Thursday, 13th March, 2025, at 3.00 pm",
              "3. Consideration of Decision 24/00093 (if required)"]],
    "eqia": [["EQIA Submission Form", "The aim of the integrated care strategy is to improve the health and "
              "wellbeing of the people of the county."]],
    "appendix": [["Improving Health and Wellbeing Priorities and Actions",
                  "Increase numbers entering substance misuse treatment and reduce drug related deaths."]],
    "minutes": [["MINUTES of a meeting of Kent County Council held in the Council Chamber, Sessions House, County "
                 "Hall, Maidstone on Thursday, 13 February 2025.", "5. INTEGRATED CARE STRATEGY",
                 "RESOLVED that the delivery plan of the integrated care strategy be noted."]],
}
AGENDA_FILE = "cabinet__2025-01-30__Agenda frontsheet 30th-Jan-2025 10.00 Cabinet.pdf"
EQIA_FILE = "cabinet__2025-01-30__24-00115 - EqIA.pdf"
APPENDIX_FILE = "cabinet__2025-01-30__24-00115 - Appendix B - KCC ICS priorities measures.pdf"
PACK_FILE = "cabinet__2025-03-13__pack__Public reports pack 13th-Mar-2025 15.00 Cabinet.pdf"
MINUTES_FILE = "county-council__2025-02-13__minutes__Printed minutes 13th-Feb-2025 10.00 County Council.pdf"
CC_APPENDIX_FILE = "county-council__2025-02-13__Appendix B.pdf"
ALL_FILES = [AGENDA_FILE, APPENDIX_FILE, EQIA_FILE, PACK_FILE, MINUTES_FILE, CC_APPENDIX_FILE]


@pytest.fixture(scope="module")
def small_papers(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("papers")
    return {key: make_pdf(folder / f"{key}.pdf", pages).read_bytes() for key, pages in SMALL_PAPERS.items()}


@pytest.fixture
def site(small_papers):
    site = kent_site(small_papers)
    with Server(site):
        yield site


def polite(**overrides) -> IndexerSettings:
    """Settings for a loopback site: no delay or backoff unless a test asks for them."""
    values = dict(sync_delay_seconds=0, sync_backoff_seconds=0, sync_retries=1, model="fake-hashing-64",
                  progress=False)
    return IndexerSettings(**{**values, **overrides})


def run(site: FakeSite, corpus: Path, settings: IndexerSettings | None = None, **kw):
    kw.setdefault("council", KENT)
    return sync_moderngov(settings or polite(), site.url, corpus, date_from=FROM, date_to=TO, **kw)


def folder_of(site: FakeSite, corpus: Path) -> Path:
    return corpus / site_folder(site.url)


# ---------------------------------------------------------------- a first sync


def test_sync_writes_each_paper_with_what_the_site_says(site, tmp_path):
    corpus = tmp_path / "corpus"
    report = run(site, corpus)
    assert report.complete and report.committees == ["Cabinet", "County Council", "Scrutiny Committee"]
    assert sorted(report.fetched) == sorted(ALL_FILES)
    folder = folder_of(site, corpus)
    on_disk = sorted(p.name for p in folder.iterdir() if not p.name.endswith(".meta.toml"))
    assert on_disk == sorted([*ALL_FILES, STATE_FILE])  # no temporary files left

    eqia = load_sidecar(folder / EQIA_FILE)
    assert (eqia.title, eqia.council, eqia.body, eqia.meeting_date, eqia.document_type, eqia.source) == (
        "24-00115 - EqIA", KENT, "Cabinet", date(2025, 1, 30), "document", "sidecar")
    assert (eqia.agenda_item, eqia.agenda_title) == ("8", ITEM_8)
    # The file name was URL-encoded on the site; the source URL stays as the site gave it.
    assert eqia.source_url == f"{site.url}/documents/s502/24-00115%20-%20EqIA.pdf"
    agenda, pack = load_sidecar(folder / AGENDA_FILE), load_sidecar(folder / PACK_FILE)
    assert (agenda.document_type, agenda.agenda_item, agenda.meeting_date) == ("agenda", None, date(2025, 1, 30))
    assert (pack.document_type, pack.body, pack.meeting_date) == ("agenda_pack", "Cabinet", date(2025, 3, 13))
    assert load_sidecar(folder / APPENDIX_FILE).document_type == "appendix"
    minutes = load_sidecar(folder / MINUTES_FILE)
    assert (minutes.document_type, minutes.body) == ("minutes", "County Council")
    raw = tomllib.loads((folder / f"{EQIA_FILE}.meta.toml").read_text(encoding="utf-8"))
    assert raw["moderngov"] == {"committee_id": "144", "meeting_id": "9001", "attachment_id": "502"}


def test_awkward_cases_of_a_real_site(site, tmp_path):
    report = run(site, tmp_path / "corpus")
    # An item's report that answers 404: said, and the rest fetched.
    assert report.failed == [(f"{site.url}/documents/s503/24-00096%20-%20Report.pdf", "404 Not Found")]
    # The EqIA listed twice under item 8: fetched once.
    assert report.listed_twice == 1 and len(site.asked("/documents/s502/")) == 1
    # Apologies, declarations and the like list no papers.
    assert report.items_without_papers == 4
    # A cancelled meeting is not asked for; nor is a meeting outside the window.
    assert report.cancelled == ["Cabinet, 20 February 2025"]
    meetings_asked = {r.query["lMeetingId"] for r in site.asked("GetMeeting") if "lMeetingId" in r.query}
    assert meetings_asked == {"9001", "9003", "9101"}
    assert {r.query["sFromDate"] for r in site.asked("GetMeetings")} == {"01/01/2025"}
    # Minutes sent as HTML inside the XML (&nbsp;, <br>) did not stop GetMeeting being read.
    assert report.meetings == 4


def test_every_request_names_the_project(site, tmp_path):
    settings = polite(sync_user_agent="boardpapers-test/1.0 (tests)")
    run(site, tmp_path / "corpus", settings)
    assert site.requests and {r.headers["user-agent"] for r in site.requests} == {"boardpapers-test/1.0 (tests)"}
    assert IndexerSettings().sync_user_agent.startswith("boardpapers/")


# ---------------------------------------------------------------- incremental


def test_second_sync_fetches_nothing(site, tmp_path):
    corpus = tmp_path / "corpus"
    run(site, corpus)
    before = {p.name: p.stat().st_mtime_ns for p in folder_of(site, corpus).iterdir()}
    site.requests.clear()
    again = run(site, corpus)
    assert again.fetched == [] and again.relabelled == [] and again.failed == []
    assert again.unchanged == len(ALL_FILES) and again.missing == 1  # the 404 is not asked for again
    assert site.documents() == [] and site.asked("GetAttachment") == []
    assert {p.name: p.stat().st_mtime_ns for p in folder_of(site, corpus).iterdir()} == before


def test_a_later_sync_fetches_only_what_is_new_or_changed(site, tmp_path, small_papers):
    corpus = tmp_path / "corpus"
    run(site, corpus)
    folder = folder_of(site, corpus)
    cabinet_30, county = site.meetings[0], site.meetings[3]
    # A revised EqIA published as a new attachment; a new meeting; an item renumbered.
    revised = Linked("512", "24-00115 - EqIA (revised)", Doc(doc_path("s512", "24-00115 - EqIA.pdf"),
                                                                  small_papers["eqia"] + b"\n% revised\n"))
    cabinet_30.items[2].linked.append(revised)
    site.meetings.append(FakeMeeting("9004", "144", date(2025, 3, 27), items=[Item("4", "Budget monitoring", [
        Linked("520", "Budget report", Doc(doc_path("s520", "Budget report.pdf"), small_papers["pack"] + b"%x"))])]))
    county.items[0].number = "6"
    site.requests.clear()
    report = run(site, corpus)
    assert sorted(report.fetched) == ["cabinet__2025-01-30__24-00115 - EqIA (512).pdf",
                                      "cabinet__2025-03-27__Budget report.pdf"]
    assert report.relabelled == [CC_APPENDIX_FILE]
    assert load_sidecar(folder / CC_APPENDIX_FILE).agenda_item == "6"
    assert sorted(r.path for r in site.documents()) == ["/documents/s512/24-00115%20-%20EqIA.pdf",
                                                        "/documents/s520/Budget%20report.pdf"]


def test_a_republished_attachment_is_fetched_again(site, tmp_path, small_papers):
    corpus = tmp_path / "corpus"
    run(site, corpus)
    eqia = site.meetings[0].items[2].linked[1]
    eqia.doc.body, eqia.published = small_papers["eqia"] + b"\n% corrected\n", "29/01/2025"
    # Its id is already known, so nothing asks GetAttachment for the new date...
    assert run(site, corpus).fetched == []
    # ...until the sync is told to recheck: then only the changed paper is downloaded again.
    site.requests.clear()
    report = run(site, corpus, recheck=True)
    assert report.fetched == [EQIA_FILE]
    assert (folder_of(site, corpus) / EQIA_FILE).read_bytes() == eqia.doc.body
    known = [r for r in site.documents() if "/s503/" not in r.path]  # s503 answered 404 and has no validator
    assert len(known) == len(ALL_FILES) and all("if-none-match" in r.headers for r in known)  # 304 for the rest
    assert report.unchanged == len(ALL_FILES) - 1


# ---------------------------------------------------------------- errors and politeness


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_site_that_is_down_is_a_clear_error_and_nothing_is_written(tmp_path):
    corpus = tmp_path / "corpus"
    with pytest.raises(SyncError, match=r"^cannot reach http://127\.0\.0\.1:\d+: cannot connect"):
        sync_moderngov(polite(), f"http://127.0.0.1:{_free_port()}", corpus)
    assert not corpus.exists()


@pytest.mark.parametrize("kind, message", [
    ("no web service", r"does not look like a Modern\.Gov site: .*GetCommittees answered 404 Not Found"),
    ("html everywhere", r"does not look like a Modern\.Gov site: .*GetCommittees did not answer XML \(mismatched tag"),
])
def test_a_site_that_is_not_moderngov_is_a_clear_error(tmp_path, kind, message):
    site = FakeSite(moderngov=False) if kind == "no web service" else FakeSite(html_everywhere=True)
    with Server(site), pytest.raises(SyncError, match=message):
        sync_moderngov(polite(), site.url, tmp_path / "corpus")
    assert not (tmp_path / "corpus").exists()


def test_an_unknown_committee_names_the_ones_there_are(site, tmp_path):
    with pytest.raises(SyncError, match=r"no committee 'Planning' on this site; it has: Cabinet \(144\), County"):
        run(site, tmp_path / "corpus", committees=["Cabinet", "Planning"])
    report = run(site, tmp_path / "corpus", committees=["cabinet", "145"])
    assert report.committees == ["Cabinet", "County Council"]


def test_retries_back_off_and_honour_retry_after(site):
    slept: list[float] = []
    site.fail["/mgwebservice.asmx/getcommittees"] = [(503, {}), (503, {}), (429, {"Retry-After": "7"})]
    fetcher = Fetcher(polite(sync_retries=3, sync_backoff_seconds=0.5), sleep=slept.append)
    r = fetcher.get(f"{site.url}/mgWebService.asmx/GetCommittees")
    assert r.status == 200 and fetcher.requests == 4
    assert slept == [0.5, 1.0, 7.0]  # doubling backoff, then the site's own Retry-After
    site.fail["/mgwebservice.asmx/getcommittees"] = [(503, {})] * 5
    with pytest.raises(FetchError, match="503"):
        Fetcher(polite(sync_retries=2), sleep=slept.append).get(f"{site.url}/mgWebService.asmx/GetCommittees")
    # A 404 is final: it is not retried.
    fetcher = Fetcher(polite(sync_retries=3), sleep=slept.append)
    with pytest.raises(FetchError, match="404"):
        fetcher.get(f"{site.url}/documents/s503/24-00096%20-%20Report.pdf")
    assert fetcher.requests == 1


def test_requests_are_spaced_by_the_delay(site, tmp_path):
    run(site, tmp_path / "corpus", polite(sync_delay_seconds=0.05))
    gaps = [b.at - a.at for a, b in zip(site.requests, site.requests[1:])]
    assert len(gaps) > 10 and min(gaps) >= 0.045


def test_a_document_over_the_size_cap_is_abandoned(site, tmp_path):
    item_9 = site.meetings[0].items[3].linked[0]
    item_9.doc.body = b"%PDF-1.4\n" + b"0" * 2_000_000
    report = run(site, tmp_path / "corpus", polite(sync_max_document_mb=1))
    assert report.complete and sorted(report.fetched) == sorted(ALL_FILES)
    assert report.failed == [(f"{site.url}{item_9.doc.path}", "larger than 1 MB (BOARDPAPERS_SYNC_MAX_DOCUMENT_MB)")]
    assert not list(folder_of(site, tmp_path / "corpus").glob("*24-00096*"))


def test_the_request_cap_stops_a_run_that_the_next_run_completes(site, tmp_path):
    corpus = tmp_path / "corpus"
    first = run(site, corpus, polite(sync_max_requests=10))
    assert not first.complete and "stopped after 10 requests" in first.stopped
    assert 0 < len(first.fetched) < len(ALL_FILES)
    rest = run(site, corpus)
    assert rest.complete and sorted(first.fetched + rest.fetched) == sorted(ALL_FILES)


def test_a_site_that_goes_down_part_way_keeps_what_was_fetched(site, tmp_path):
    corpus = tmp_path / "corpus"
    site.drop_after = 11
    first = run(site, corpus)
    assert first.stopped.startswith(f"cannot reach {site.url} (connection failed")
    assert "what was fetched is kept, run the sync again to carry on" in first.stopped
    folder = folder_of(site, corpus)
    pdfs = sorted(p.name for p in folder.glob("*.pdf"))
    assert pdfs == sorted(first.fetched) and 0 < len(pdfs) < len(ALL_FILES)
    assert all((folder / f"{name}.meta.toml").is_file() for name in pdfs)
    assert not list(folder.glob(".tmp-*"))
    site.drop_after = None
    rest = run(site, corpus)
    assert rest.complete and sorted(first.fetched + rest.fetched) == sorted(ALL_FILES)


def test_a_failed_write_leaves_nothing_half_written(site, tmp_path, monkeypatch):
    corpus = tmp_path / "corpus"
    real = Path.write_bytes

    def full_disk(self, data):
        if self.name.endswith("24-00115 - EqIA.pdf"):
            raise OSError(28, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    with pytest.raises(SyncError, match="cannot write into .*No space left on device"):
        run(site, corpus)
    monkeypatch.undo()
    folder = folder_of(site, corpus)
    names = sorted(p.name for p in folder.iterdir())
    assert not [n for n in names if n.startswith(".tmp-") or "EqIA" in n]  # neither the paper nor its sidecar
    state = json.loads((folder / STATE_FILE).read_text())
    assert sorted(d["path"] for d in state["documents"].values()) == [n for n in names if n.endswith(".pdf")]
    report = run(site, corpus)  # the next run fetches what is missing, and only that
    assert EQIA_FILE in report.fetched and AGENDA_FILE not in report.fetched


def test_two_papers_with_one_file_name_are_told_apart(tmp_path, small_papers):
    site = FakeSite(committees={"7": "Audit Committee"}, meetings=[FakeMeeting("1", "7", date(2025, 2, 3), items=[
        Item("4", "Annual report", [Linked("700", "Report", Doc(doc_path("s700", "Report.pdf"), small_papers["pack"])),
                                    Linked("701", "Report", Doc(doc_path("s701", "Report.pdf"), small_papers["eqia"]))]),
    ])])
    with Server(site):
        report = run(site, tmp_path / "corpus")
    assert report.fetched == ["audit-committee__2025-02-03__Report.pdf", "audit-committee__2025-02-03__Report (701).pdf"]


# ---------------------------------------------------------------- sync, then build


def test_sync_then_build_gives_every_paper_its_committee_date_and_item(site, tmp_path, fake_encoder):
    corpus = tmp_path / "corpus"
    run(site, corpus, council=None)  # no --council: it is read from the papers
    settings = polite(corpus_dir=corpus, index_dir=tmp_path / "index")
    report = pipeline.build(settings, encoder=fake_encoder)
    folder = folder_of(site, corpus)
    # County Council's appendix is the Cabinet's appendix, byte for byte: indexed once.
    assert [(Path(d.path).name, Path(d.same_as).name) for d in report.duplicates] == [(CC_APPENDIX_FILE, APPENDIX_FILE)]
    index = store.load_index(settings.index_dir)
    docs = {Path(rec.path).name: rec for rec in index.documents.values()}
    assert sorted(docs) == sorted(set(ALL_FILES) - {CC_APPENDIX_FILE})
    for name, rec in docs.items():
        side = load_sidecar(folder / name)
        assert (rec.body, rec.meeting_date, rec.metadata_source, rec.source_url) == (
            side.body, side.meeting_date, "sidecar", side.source_url), name
        assert rec.council == KENT, (name, rec.notes)  # from the front sheet or the meeting's other papers
    for name in (EQIA_FILE, APPENDIX_FILE):
        chunks = [c for c in index.chunks if c.doc_id == docs[name].id]
        assert chunks and {c.agenda_item for c in chunks} == {f"Item 8: {ITEM_8}"}
    assert run(site, corpus, council=None).fetched == []
    assert pipeline.build(settings, encoder=fake_encoder).up_to_date


def test_search_ask_and_decisions_filter_by_committee_and_date_and_cite_the_source(site, tmp_path, fake_encoder):
    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.config import ServiceSettings

    corpus = tmp_path / "corpus"
    run(site, corpus)
    settings = polite(corpus_dir=corpus, index_dir=tmp_path / "index")
    pipeline.build(settings, encoder=fake_encoder)
    app = create_app(ServiceSettings(index_dir=settings.index_dir, model=fake_encoder.name, onnx_queries=False),
                     encoder=fake_encoder)
    with TestClient(app) as client:
        def search(**filters):
            r = client.post("/search", json={"query": "integrated care strategy health", "k": 20, "filters": filters})
            assert r.status_code == 200, r.text
            return [x["citation"] for x in r.json()["results"]]

        cabinet = search(body="Cabinet", date_from="2025-01-01", date_to="2025-01-31")
        assert cabinet and {(c["body"], c["meeting_date"]) for c in cabinet} == {("Cabinet", "2025-01-30")}
        assert all(c["source_url"].startswith(f"{site.url}/documents/") for c in cabinet)
        county = search(body="County Council")
        assert county and {c["body"] for c in county} == {"County Council"}
        assert search(body="Scrutiny Committee") == []

        decisions = client.get("/decisions", params={"body": "County Council", "date_from": "2025-02"}).json()
        assert decisions["total"] >= 1
        assert {d["citation"]["source_url"] for d in decisions["decisions"]} == {
            f"{site.url}/documents/g9101/Printed%20minutes%2013th-Feb-2025%2010.00%20County%20Council.pdf"}
        assert client.get("/decisions", params={"body": "Cabinet", "date_from": "2025-02"}).json()["total"] == 0

        asked = client.post("/ask", json={"question": "what did the county council resolve about the integrated "
                                                      "care strategy?", "filters": {"body": "County Council"}}).json()
        for c in asked["citations"]:
            assert c["source_url"] and c["body"] == "County Council"
        docs = client.get("/documents").json()["documents"]
        assert all(d["source_url"] for d in docs)


# ---------------------------------------------------------------- the CLI


def test_cli_syncs_and_says_what_it_did(site, tmp_path, capsys, monkeypatch):
    from indexer.__main__ import main

    monkeypatch.setenv("BOARDPAPERS_SYNC_DELAY_SECONDS", "0")
    corpus = tmp_path / "corpus"
    args = ["sync", "moderngov", "--site", site.url, "--committee", "Cabinet", "County Council", "--from",
            "2025-01-01", "--to", "2025-03-31", "--corpus", str(corpus), "--council", KENT]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"synced {site.url} into {folder_of(site, corpus)}: 2 committees, 4 meetings (1 cancelled); " \
           f"6 papers fetched, 0 unchanged, 1 problem;" in out
    assert "note: 1 paper listed more than once, fetched once" in out
    assert f"fetched: {EQIA_FILE}" in out and "cancelled: Cabinet, 20 February 2025" in out
    assert "problem: " in out and "24-00096%20-%20Report.pdf: 404 Not Found" in out
    assert main(args) == 0
    assert "0 papers fetched, 6 unchanged" in capsys.readouterr().out

    assert main(["build", str(corpus), "--index", str(tmp_path / "index"), "--model", "fake-hashing-64",
                 "--no-progress"]) == 0
    assert f"duplicate: {folder_of(site, corpus) / CC_APPENDIX_FILE}: same bytes as " in capsys.readouterr().out


def test_cli_errors_are_one_line(tmp_path, capsys, monkeypatch):
    from indexer.__main__ import main

    monkeypatch.setenv("BOARDPAPERS_SYNC_RETRIES", "0")
    assert main(["sync", "moderngov", "--site", f"http://127.0.0.1:{_free_port()}", "--corpus", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot reach ") and err.count("\n") == 1
    with pytest.raises(SystemExit):
        main(["sync", "moderngov", "--site", "x", "--from", "30/01/2025"])
    assert "'30/01/2025' is not a date: write YYYY-MM-DD" in capsys.readouterr().err


# ---------------------------------------------------------------- the real Kent papers


def test_sync_of_the_kent_pdfs_then_build(tmp_path, fake_encoder, kent_pdfs, kent_parsed, small_papers, monkeypatch):
    """The fake site serving the four published Kent PDFs: each gets the metadata the site gives."""
    papers = {key: kent_pdfs[key].read_bytes() for key in KENT_NAMES}
    site = kent_site({**papers, "minutes": small_papers["minutes"]})
    corpus = tmp_path / "corpus"
    with Server(site):
        run(site, corpus)
    real_parse = pipeline.parse

    def parse_once(src, strategy="fast"):
        # The Kent PDFs are parsed once per session (conftest.kent_parsed); parsing is tested elsewhere.
        done = kent_parsed.get(src.sha256)
        return dataclasses.replace(done, doc_id=src.doc_id, path=src.path) if done else real_parse(src, strategy)

    monkeypatch.setattr(pipeline, "parse", parse_once)
    settings = polite(corpus_dir=corpus, index_dir=tmp_path / "index")
    pipeline.build(settings, encoder=fake_encoder)
    index = store.load_index(settings.index_dir)
    got = {Path(r.path).name: (r.council, r.body, r.meeting_date, r.document_type, [p.agenda_item for p in r.parts][:1])
           for r in index.documents.values()}
    assert got[AGENDA_FILE] == (KENT, "Cabinet", date(2025, 1, 30), "agenda", [None])
    assert got[PACK_FILE] == (KENT, "Cabinet", date(2025, 3, 13), "agenda_pack", [None])
    assert got[EQIA_FILE] == (KENT, "Cabinet", date(2025, 1, 30), "document", ["8"])
    assert got[APPENDIX_FILE] == (KENT, "Cabinet", date(2025, 1, 30), "appendix", ["8"])
    # The file names the sync chose are the names these papers were saved under by hand.
    assert {AGENDA_FILE, PACK_FILE, EQIA_FILE, APPENDIX_FILE} == set(KENT_NAMES.values())
