"""Faults during and after a build: kill -9 mid-build, a full disk, two builds at once, damaged index files.

The builds that fail here are real `python -m indexer build` processes (with the fake
encoder); tests/fault_build.py stops one at a chosen point so it is killed there and nowhere
else. A service over the index runs through the kills and must keep answering from the
previous index. The builds that follow, which must complete, run in the test's own process
(the same code, without a second interpreter start).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from indexer import pipeline, store
from indexer.config import IndexerSettings

FAKE = "fake-hashing-64"
REPO = Path(__file__).resolve().parent.parent
NEW_TEXT = "A late addendum: the Board agreed a dental health outreach programme for care homes."


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOARDPAPERS_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["BOARDPAPERS_LOG_LEVEL"] = "WARNING"  # stderr holds the error line alone
    for name in ("DO_NOT_TRACK", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "UNSTRUCTURED_DISABLE_NOTICE"):
        env.setdefault(name, "1")
    return env


def _build_args(corpus: Path, index: Path) -> list[str]:
    return ["build", str(corpus), "--index", str(index), "--model", FAKE, "--no-progress"]


def _cli(corpus: Path, index: Path, timeout: float = 120, preexec=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "indexer", *_build_args(corpus, index)], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=timeout, preexec_fn=preexec)


def _build(corpus: Path, index: Path) -> pipeline.BuildReport:
    """The next build, in this process."""
    return pipeline.build(IndexerSettings(corpus_dir=corpus, index_dir=index, model=FAKE, progress=False))


def _paused_build(stage: str, corpus: Path, index: Path, marker: Path) -> subprocess.Popen:
    """A real build stopped at `stage`: returns once it is waiting there (marker written)."""
    proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "fault_build.py"), stage, str(marker), "--",
                             *_build_args(corpus, index)], cwd=REPO, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not marker.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the build ended (rc {proc.returncode}) before reaching {stage}: {err[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the build did not reach {stage} in 120 s")
        time.sleep(0.05)
    return proc


def _kill9(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _chunk_ids(index: Path) -> list[str]:
    return [c.id for c in store.load_index(index).chunks]


def _has_new_text(index: Path) -> bool:
    return any("dental health outreach" in c.text for c in store.load_index(index).chunks)


def _add_new_file(corpus: Path) -> None:
    (corpus / "addendum.txt").write_text(f"ADDENDUM\n\n{NEW_TEXT}\n", encoding="utf-8")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_corpus_factory):
    """The tiny corpus built through the CLI and served by `python -m service`: (corpus, index, base url)."""
    tmp = tmp_path_factory.mktemp("faults")
    corpus = tiny_corpus_factory(tmp / "corpus")
    index = tmp / "index"
    proc = _cli(corpus, index)
    assert proc.returncode == 0, proc.stderr
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "service", "--index", str(index), "--port", str(port)],
                              cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.fail(f"the service did not start: {server.communicate()[1][-2000:]}")
        time.sleep(0.2)
    yield corpus, index, url
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()


def _search_ok(url: str) -> list[str]:
    r = httpx.get(f"{url}/search", params={"q": "bowel screening uptake"}, timeout=30)
    assert r.status_code == 200, r.text
    hits = r.json()["results"]
    assert hits, r.json()
    return [h["citation"]["chunk_id"] for h in hits]


# ---------------------------------------------------------------- kill -9 mid-build


@pytest.mark.parametrize("stage", ["parse", "embed", "write", "switch"])
def test_kill_9_mid_build_leaves_the_previous_index(served, tmp_path, stage):
    corpus, index, url = served
    before_ids, before_build = _chunk_ids(index), store.current_build(index)
    before_hits = _search_ok(url)
    _add_new_file(corpus)

    proc = _paused_build(stage, corpus, index, tmp_path / "marker")
    # While the build is stopped at its stage the index is the previous one, whole.
    assert store.current_build(index) == before_build
    _kill9(proc)

    assert store.current_build(index) == before_build
    assert _chunk_ids(index) == before_ids and not _has_new_text(index)  # loads, checksums verified
    assert _search_ok(url) == before_hits  # the service kept answering from it

    # The next build completes, picks up the change and clears what the killed one left (keeping
    # only the build it replaced).
    assert not _build(corpus, index).up_to_date
    assert _has_new_text(index)
    builds = sorted(p.name for p in (index / store.BUILDS).iterdir())
    assert builds == sorted([store.current_build(index).name, before_build.name])
    assert not [p for p in index.iterdir() if p.name.startswith(f".{store.CURRENT}-")]
    # Back to the served corpus for the next stage.
    (corpus / "addendum.txt").unlink()
    _build(corpus, index)
    assert not _has_new_text(index)


# ---------------------------------------------------------------- two builds at once


def test_second_build_while_one_runs_is_refused(served, tmp_path):
    corpus, index, url = served
    before_ids = _chunk_ids(index)
    _add_new_file(corpus)
    first = _paused_build("embed", corpus, index, tmp_path / "marker")
    try:
        second = _cli(corpus, index)
        assert second.returncode == 2
        assert "Traceback" not in second.stderr
        assert second.stderr.strip().splitlines() == [
            f"error: another build of {index} is running (pid {first.pid}); wait for it to finish, "
            f"the index is left to it"]
        assert _chunk_ids(index) == before_ids
    finally:
        _kill9(first)
    # The kernel dropped the killed build's lock: no stale lock file blocks the next one.
    _build(corpus, index)
    assert _has_new_text(index)
    (corpus / "addendum.txt").unlink()
    _build(corpus, index)


def test_two_builds_started_together_leave_one_whole_index(served):
    corpus, index, url = served
    _add_new_file(corpus)
    try:
        procs = [subprocess.Popen([sys.executable, "-m", "indexer", *_build_args(corpus, index)], cwd=REPO,
                                  env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        results = [(p.wait(timeout=120), p.communicate()[1]) for p in procs]
        # Either both ran one after the other, or one was refused with the lock's message.
        for rc, err in results:
            assert rc == 0 or (rc == 2 and "another build of" in err), err
        assert any(rc == 0 for rc, _ in results)
        assert _has_new_text(index)  # loads: every file matches its checksum
        kept = [p.name for p in (index / store.BUILDS).iterdir()]
        assert store.current_build(index).name in kept and len(kept) <= 2 and not [k for k in kept if k.startswith(".")]
        _search_ok(url)
    finally:
        (corpus / "addendum.txt").unlink()
    _build(corpus, index)


# ---------------------------------------------------------------- a full disk


def _mount_tmpfs(where: Path, size_kb: int) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(where)],
                          capture_output=True).returncode == 0


def _used_kb(folder: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in folder.rglob("*") if p.is_file()) // 1024


def _big_paper(corpus: Path, kb: int) -> None:
    para = ("The Board considered the capital programme, the borrowing limits and the reserves held "
            "against each scheme, and asked officers for a report on slippage. ")
    (corpus / "capital-programme.txt").write_text("CAPITAL PROGRAMME\n\n" + "\n\n".join(
        f"{i}. {para}" for i in range(kb * 1024 // len(para))), encoding="utf-8")


def _assert_full_disk_failed_cleanly(proc, index: Path, before_ids: list[str], reason: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot write the index at {index}: {reason}"), lines
    assert lines[0].endswith("the build failed, the previous index is left as it was")
    assert _chunk_ids(index) == before_ids
    assert not [p for p in (index / store.BUILDS).iterdir() if p.name.startswith(".tmp-")]


def test_full_disk_fails_the_build_not_the_index(tmp_path, tiny_corpus_factory):
    """A size-limited file system (tmpfs) holding the index fills up during the build."""
    mount = tmp_path / "small-disk"
    corpus = tiny_corpus_factory(tmp_path / "corpus")
    # First the tiny index alone, to learn its size.
    probe = tmp_path / "probe-index"
    _build(corpus, probe)
    size_kb = _used_kb(probe) * 2 + 256  # room for the index once more (the old one stays), not for the big paper
    if not _mount_tmpfs(mount, size_kb):
        pytest.skip("cannot mount a tmpfs here (needs root); test_file_size_limit_fails_the_build covers EFBIG")
    try:
        index = mount / "index"
        _build(corpus, index)
        before_ids = _chunk_ids(index)
        _big_paper(corpus, kb=size_kb)
        proc = _cli(corpus, index)
        _assert_full_disk_failed_cleanly(proc, index, before_ids, "No space left on device")
        # Space freed (the file system grown): the next build completes.
        subprocess.run(["mount", "-o", "remount,size=256m", str(mount)], check=True)
        _build(corpus, index)
        assert "capital-programme" in store.load_index(index).documents
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_file_size_limit_fails_the_build(tmp_path, tiny_corpus_factory):
    """The same without a mount: RLIMIT_FSIZE in the build's process makes large writes fail (EFBIG)."""
    import resource

    corpus = tiny_corpus_factory(tmp_path / "corpus")
    index = tmp_path / "index"
    _build(corpus, index)
    before_ids = _chunk_ids(index)
    _big_paper(corpus, kb=200)
    limit = 128 * 1024

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = _cli(corpus, index, preexec=small_files)
    _assert_full_disk_failed_cleanly(proc, index, before_ids, "File too large")
    _build(corpus, index)
    assert "capital-programme" in store.load_index(index).documents


# ---------------------------------------------------------------- damaged index files


@pytest.fixture
def small_index(tiny_corpus, settings_for, fake_encoder):
    settings = settings_for(tiny_corpus)
    pipeline.build(settings, encoder=fake_encoder)
    return settings.index_dir


def _files(index: Path) -> list[str]:
    return sorted(store.read_manifest(index)["files"])


def test_manifest_lists_every_file_of_the_build(small_index):
    build = store.current_build(small_index)
    on_disk = sorted(p.relative_to(build).as_posix() for p in build.rglob("*") if p.is_file())
    assert _files(small_index) == [f for f in on_disk if f != store.MANIFEST]
    assert {"chunks.jsonl", "vectors.npy", "dense.faiss", "documents.jsonl"} <= set(_files(small_index))
    assert any(f.startswith("bm25/") for f in _files(small_index))


def test_truncated_altered_or_missing_files_are_refused_by_name(small_index):
    build = store.current_build(small_index)
    for rel in _files(small_index):
        path = build / rel
        original = path.read_bytes()
        try:
            path.write_bytes(original[:-1])
            with pytest.raises(store.IndexError_, match=rf"index file {build / rel} has \d+ bytes.*truncated"):
                store.load_index(small_index)
            flipped = bytearray(original)
            flipped[len(flipped) // 2] ^= 0x01
            path.write_bytes(bytes(flipped))
            with pytest.raises(store.IndexError_, match=rf"index file {build / rel} does not match its checksum"):
                store.load_index(small_index)
            # Sizes alone (verify=False, the cheap check) still catch a truncation, not a flipped bit.
            path.write_bytes(original[:-1])
            with pytest.raises(store.IndexError_, match="truncated"):
                store.load_index(small_index, verify=False)
            path.unlink()
            with pytest.raises(store.IndexError_, match=rf"index file {build / rel} is missing"):
                store.load_index(small_index)
        finally:
            path.write_bytes(original)
        store.load_index(small_index)  # whole again


@pytest.mark.parametrize("damage, message", [
    (lambda s: s[: len(s) // 2], "manifest.json cannot be read"),
    (lambda s: "[]", "manifest.json cannot be read"),
    (lambda s: json.dumps({**json.loads(s), "files": {}}), "lists no file checksums"),
    (lambda s: json.dumps({**json.loads(s), "model": "x"}), "manifest.json cannot be read"),
], ids=["cut-short", "not-an-object", "no-file-list", "no-model"])
def test_damaged_manifest_is_refused_by_name(small_index, damage, message):
    path = store.current_build(small_index) / store.MANIFEST
    path.write_text(damage(path.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(store.IndexError_, match=message):
        store.load_index(small_index)


def test_a_damaged_previous_index_is_rebuilt_from_scratch(small_index, tiny_corpus, settings_for, fake_encoder):
    """The next build does not reuse vectors from a build that fails its checksums."""
    build = store.current_build(small_index)
    vectors = build / "vectors.npy"
    data = bytearray(vectors.read_bytes())
    data[-3] ^= 0xFF
    vectors.write_bytes(bytes(data))
    report = pipeline.build(settings_for(tiny_corpus), encoder=fake_encoder)
    assert not report.up_to_date and report.reused_vectors == 0 and report.embedded == report.chunks
    store.load_index(small_index)


# ---------------------------------------------------------------- broken corpus files


def test_broken_corpus_files_are_reported_and_the_rest_is_indexed(tiny_corpus, settings_for, fake_encoder,
                                                                  two_page_pdf):
    """What tests/test_pipeline.py's bad files do not cover: huge, mislabelled, a URL-encoded copy."""
    import zipfile

    pdf = two_page_pdf.read_bytes()
    paper = ("SCRUTINY COMMITTEE\n\nThe committee reviewed the library opening hours and asked for a "
             "consultation with residents before any change.\n")
    (tiny_corpus / "Scrutiny minutes.txt").write_text(paper, encoding="utf-8")
    (tiny_corpus / "Scrutiny%20minutes.txt").write_text(paper, encoding="utf-8")  # as a download names it
    (tiny_corpus / "huge.txt").write_text("The Board noted the report. " * 4000, encoding="utf-8")  # ~110 KB
    (tiny_corpus / "notes-really-text.pdf").write_text("The Board noted the report.", encoding="utf-8")
    (tiny_corpus / "a-pdf-really.txt").write_bytes(pdf)
    (tiny_corpus / "letter-really-text.docx").write_text("Dear Councillor,", encoding="utf-8")
    with zipfile.ZipFile(tiny_corpus / "archive-not-a-document.docx", "w") as z:
        z.writestr("readme.txt", "not a Word document")
    (tiny_corpus / "cut-short.pdf").write_bytes(pdf[: len(pdf) // 3])
    (tiny_corpus / "blank.md").write_text("   \n\n  ", encoding="utf-8")

    settings = settings_for(tiny_corpus, max_file_mb=0.05)
    report = pipeline.build(settings, encoder=fake_encoder)
    skipped = {Path(s.path).name: s.reason for s in report.skipped}
    assert skipped.keys() == {"huge.txt", "notes-really-text.pdf", "a-pdf-really.txt", "letter-really-text.docx",
                              "archive-not-a-document.docx", "cut-short.pdf", "blank.md"}, skipped
    assert skipped["huge.txt"].startswith("too large (0.1 MB; the limit is 0.05 MB")
    assert skipped["notes-really-text.pdf"] == "not a PDF (no %PDF header)"
    assert skipped["a-pdf-really.txt"] == "mislabelled: a PDF under a text file's name"
    assert skipped["letter-really-text.docx"] == "not a .docx (not a zip container)"
    assert skipped["archive-not-a-document.docx"].startswith("could not be parsed")
    assert skipped["cut-short.pdf"]
    assert skipped["blank.md"] == "empty file"
    assert [(Path(d.path).name, Path(d.same_as).name) for d in report.duplicates] == [
        ("Scrutiny%20minutes.txt", "Scrutiny minutes.txt")]
    loaded = store.load_index(settings.index_dir)
    assert set(loaded.documents) == {"hwb-2018-07-26-pack", "healthy-weight-notes", "air-quality-briefing",
                                     "Scrutiny-minutes"}
    assert sum("library opening hours" in c.text for c in loaded.chunks) == 1
    # Unchanged, the corpus is up to date and still names what it skipped; a higher limit takes the huge file in.
    assert pipeline.build(settings, encoder=fake_encoder).up_to_date
    bigger = pipeline.build(settings_for(tiny_corpus, max_file_mb=1), encoder=fake_encoder)
    assert "huge.txt" not in {Path(s.path).name for s in bigger.skipped}
    assert "huge" in store.load_index(settings.index_dir).documents
