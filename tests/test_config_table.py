"""The README's configuration table names every setting of both packages, with its default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic_core import PydanticUndefined

from indexer.config import IndexerSettings
from service.config import ServiceSettings

README = Path(__file__).resolve().parent.parent / "README.md"
PREFIX = "BOARDPAPERS_"
SETTINGS = {"indexer": IndexerSettings, "service": ServiceSettings}


def _table() -> dict[str, list[str]]:
    """variable -> [default, read by, meaning], from the table under '## Configuration'."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        m = re.fullmatch(rf"`({PREFIX}[A-Z0-9_]+)`", cells[0]) if line.startswith("|") else None
        if m:
            assert m.group(1) not in rows, f"{m.group(1)} has two rows"
            rows[m.group(1)] = cells[1:]
    return rows


def _variables() -> dict[str, dict[str, object]]:
    """variable -> {package: default} for every settings field (PydanticUndefined for a computed default)."""
    out: dict[str, dict[str, object]] = {}
    for package, cls in SETTINGS.items():
        prefix = cls.model_config.get("env_prefix", "")
        assert prefix == PREFIX, (cls, prefix)
        for name, field in cls.model_fields.items():
            default = PydanticUndefined if field.default_factory is not None else field.default
            out.setdefault(f"{PREFIX}{name.upper()}", {})[package] = default
    return out


def _shown(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value}`"


def test_every_setting_has_a_row_and_every_row_a_setting():
    table, variables = _table(), _variables()
    assert len(variables) > 40  # both settings classes were read
    missing = sorted(variables.keys() - table.keys())
    stale = sorted(table.keys() - variables.keys())
    assert not missing, f"settings missing from the README's configuration table: {missing}"
    assert not stale, f"README rows for settings that no longer exist: {stale}"


@pytest.mark.parametrize("variable", sorted(_variables()))
def test_row_gives_default_reader_and_meaning(variable):
    row = _table().get(variable)
    assert row is not None, f"{variable} is missing from the README's configuration table"
    default, read_by, meaning = row
    packages = _variables()[variable]
    assert read_by == ", ".join(packages), f"{variable}: 'read by' says {read_by!r}, the code {list(packages)}"
    assert meaning and default
    defaults = set(map(repr, packages.values()))
    if len(defaults) == 1 and PydanticUndefined not in packages.values():
        assert default.startswith(_shown(next(iter(packages.values())))), \
            f"{variable}: README default {default!r}, code {_shown(next(iter(packages.values())))}"
