"""Loaders for public retrieval benchmarks (BEIR-format sets and Cranfield 1400)."""

import json
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BenchDoc:
    """One corpus document."""

    id: str
    title: str
    text: str


@dataclass(frozen=True)
class BenchQuery:
    """One benchmark query."""

    id: str
    text: str


@dataclass(frozen=True)
class Benchmark:
    """A corpus, its judged queries and graded relevance judgements.

    ``qrels`` maps query id -> doc id -> gain; only gains > 0 are stored, and every
    query in ``queries`` has at least one entry.
    """

    name: str
    docs: list[BenchDoc]
    queries: list[BenchQuery]
    qrels: dict[str, dict[str, int]]


def _require_file(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"benchmark file not found: {path}")
    return path


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    with _require_file(path).open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: invalid JSON: {exc.msg}") from exc
            if not isinstance(row, dict) or "_id" not in row:
                raise ValueError(f"{path}:{lineno}: expected an object with an '_id' field")
            row["_lineno"] = lineno
            rows.append(row)
    return rows


def _check_unique(ids: list[str], what: str, path: Path) -> None:
    seen: set[str] = set()
    for item_id in ids:
        if item_id in seen:
            raise ValueError(f"{path}: duplicate {what} id {item_id!r}")
        seen.add(item_id)


def _read_beir_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with _require_file(path).open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            cols = line.rstrip("\r\n").split("\t")
            if lineno == 1 and cols[0].strip().lower() == "query-id":
                continue
            if len(cols) != 3:
                raise ValueError(f"{path}:{lineno}: expected 3 tab-separated columns, got {len(cols)}")
            qid, did, score_text = (c.strip() for c in cols)
            try:
                score = int(score_text)
            except ValueError:
                raise ValueError(f"{path}:{lineno}: score {score_text!r} is not an integer") from None
            if score > 0:
                # Duplicate pairs occur in some qrels files; the strongest judgement wins.
                per_query = qrels.setdefault(qid, {})
                per_query[did] = max(score, per_query.get(did, 0))
    return qrels


def load_beir(path: Path, split: str = "test") -> Benchmark:
    """Load a dataset in BEIR layout.

    Args:
        path: Folder holding ``corpus.jsonl`` (``_id``, ``title``, ``text``),
            ``queries.jsonl`` (``_id``, ``text``) and ``qrels/<split>.tsv``
            (tab-separated ``query-id corpus-id score`` with a header line).
        split: Which qrels file to use, e.g. ``"test"`` or ``"train"``.

    Returns:
        A Benchmark named after the folder, holding every document, only the
        queries that have at least one judgement with score > 0 (in file order),
        and those positive judgements.

    Raises:
        FileNotFoundError: If any of the three files is missing (the message names it).
        ValueError: On malformed lines, duplicate ids, or qrels naming a query
            that is absent from ``queries.jsonl``.
    """
    path = Path(path)
    corpus_path = path / "corpus.jsonl"
    queries_path = path / "queries.jsonl"
    qrels_path = path / "qrels" / f"{split}.tsv"
    for required in (corpus_path, queries_path, qrels_path):
        _require_file(required)

    docs = [
        BenchDoc(id=str(r["_id"]), title=r.get("title") or "", text=r.get("text") or "")
        for r in _read_jsonl(corpus_path)
    ]
    _check_unique([d.id for d in docs], "document", corpus_path)

    all_queries = [BenchQuery(id=str(r["_id"]), text=r.get("text") or "") for r in _read_jsonl(queries_path)]
    _check_unique([q.id for q in all_queries], "query", queries_path)

    qrels = _read_beir_qrels(qrels_path)
    known = {q.id for q in all_queries}
    unknown = sorted(set(qrels) - known)
    if unknown:
        raise ValueError(f"{qrels_path}: qrels name {len(unknown)} query ids absent from {queries_path.name}, e.g. {unknown[:3]}")

    queries = [q for q in all_queries if q.id in qrels]
    return Benchmark(name=path.name, docs=docs, queries=queries, qrels=qrels)


_CRAN_MARKER_RE = re.compile(r"^\.([ITABW])(?:\s+(\S+))?\s*$")


# Splits a Cranfield ".I"-delimited file into (raw id, field letter -> lines) records.
def _read_cran_records(path: Path) -> list[tuple[str, dict[str, list[str]]]]:
    records: list[tuple[str, dict[str, list[str]]]] = []
    field: str | None = None
    # Universal newlines: cran.qry ships with CRLF endings, cran.all.1400 with LF.
    with _require_file(path).open(encoding="ascii", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            line = line.rstrip()
            marker = _CRAN_MARKER_RE.match(line)
            if marker and marker.group(1) == "I":
                if not marker.group(2):
                    raise ValueError(f"{path}:{lineno}: '.I' line without an id")
                records.append((marker.group(2), {}))
                field = None
                continue
            if not records:
                if line.strip():
                    raise ValueError(f"{path}:{lineno}: text before the first '.I' record")
                continue
            fields = records[-1][1]
            # The distribution has a few corrupted records (e.g. doc 240) with stray
            # .A/.B lines inside the abstract; once .W has begun, everything up to
            # the next .I is abstract, so those lines stay in the text.
            if marker and not (field == "W" and marker.group(1) != "W"):
                field = marker.group(1)
                fields.setdefault(field, [])
                continue
            if marker:
                continue
            if field is None:
                if line.strip():
                    raise ValueError(f"{path}:{lineno}: text outside any field")
                continue
            fields[field].append(line)
    return records


def _join(lines: list[str] | None) -> str:
    return "\n".join(lines or []).strip()


def _cran_gain(grade: int) -> int:
    # Cleverdon's scale (cranqrel.readme): 1 complete answer, 2 high relevance,
    # 3 useful background, 4 minimum interest, 5 no interest. -1 is not on the scale;
    # it appears once per query in the distributed file and marks a non-relevant pair.
    if 1 <= grade <= 4:
        return 5 - grade
    if grade in (-1, 5):
        return 0
    raise ValueError(f"unknown Cranfield relevance grade {grade}")


def load_cranfield(path: Path) -> Benchmark:
    """Load the original Cranfield 1400 distribution.

    Documents come from ``cran.all.1400`` (``.I`` id, ``.T`` title, ``.A`` author,
    ``.B`` bibliography, ``.W`` abstract); title and abstract are kept, author and
    bibliography are not. The abstract in this collection begins by repeating the
    title; it is left as distributed. Lines inside ``.W`` that look like field
    markers (a known corruption in a few records) are treated as abstract text.

    Queries in ``cran.qry`` carry non-sequential ``.I`` numbers, but ``cranqrel``
    refers to queries by position, so queries are renumbered 1..N in file order and
    that number (as a string) is the query id.

    Grades follow Cleverdon's scale as given in ``cranqrel.readme``, where a LOWER
    grade means MORE relevant: 1 = complete answer, 2 = high relevance, 3 = useful
    background, 4 = minimum interest, 5 = no interest. Gains are ``5 - grade`` for
    grades 1-4 (1->4, 2->3, 3->2, 4->1). Grade 5 is "no interest" per the readme,
    so it is treated as non-relevant and dropped, as is -1 (which the readme does
    not define; the file has one such line per query and it marks non-relevance).
    The distributed file contains no grade 5.

    Args:
        path: Folder holding ``cran.all.1400``, ``cran.qry`` and ``cranqrel``.

    Returns:
        A Benchmark named ``"cranfield"`` with all documents, the queries that have
        at least one positive judgement, and their gains.

    Raises:
        FileNotFoundError: If any of the three files is missing (the message names it).
        ValueError: On malformed records or qrels lines, unknown grades, or qrels
            naming a query number outside 1..N.
    """
    path = Path(path)
    docs_path = path / "cran.all.1400"
    queries_path = path / "cran.qry"
    qrels_path = path / "cranqrel"
    for required in (docs_path, queries_path, qrels_path):
        _require_file(required)

    docs = []
    for raw_id, fields in _read_cran_records(docs_path):
        try:
            doc_id = str(int(raw_id))
        except ValueError:
            raise ValueError(f"{docs_path}: document id {raw_id!r} is not an integer") from None
        docs.append(BenchDoc(id=doc_id, title=_join(fields.get("T")), text=_join(fields.get("W"))))
    _check_unique([d.id for d in docs], "document", docs_path)

    all_queries = [
        BenchQuery(id=str(number), text=_join(fields.get("W")))
        for number, (_raw_id, fields) in enumerate(_read_cran_records(queries_path), start=1)
    ]

    qrels: dict[str, dict[str, int]] = {}
    with qrels_path.open(encoding="ascii", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            cols = line.split()
            if not cols:
                continue
            if len(cols) != 3:
                raise ValueError(f"{qrels_path}:{lineno}: expected 'qid docid grade', got {line.strip()!r}")
            try:
                qnum, dnum, grade = (int(c) for c in cols)
            except ValueError:
                raise ValueError(f"{qrels_path}:{lineno}: non-integer field in {line.strip()!r}") from None
            if not 1 <= qnum <= len(all_queries):
                raise ValueError(f"{qrels_path}:{lineno}: query number {qnum} outside 1..{len(all_queries)}")
            try:
                gain = _cran_gain(grade)
            except ValueError as exc:
                raise ValueError(f"{qrels_path}:{lineno}: {exc}") from None
            if gain > 0:
                per_query = qrels.setdefault(str(qnum), {})
                per_query[str(dnum)] = max(gain, per_query.get(str(dnum), 0))

    queries = [q for q in all_queries if q.id in qrels]
    return Benchmark(name="cranfield", docs=docs, queries=queries, qrels=qrels)
