import json

import pytest

from evals.datasets import BenchDoc, BenchQuery, Benchmark, load_beir, load_cranfield


def _write_jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")


@pytest.fixture
def beir_dir(tmp_path):
    root = tmp_path / "tinyfact"
    (root / "qrels").mkdir(parents=True)
    _write_jsonl(
        root / "corpus.jsonl",
        [
            {"_id": "d1", "title": "Aspirin", "text": "Aspirin reduces fever.", "metadata": {}},
            {"_id": "d2", "title": "", "text": "Statins lower cholesterol."},
            {"_id": "d3", "text": "No title field at all."},
        ],
    )
    _write_jsonl(
        root / "queries.jsonl",
        [
            {"_id": "q1", "text": "does aspirin reduce fever", "metadata": {}},
            {"_id": "q2", "text": "unjudged query"},
            {"_id": "q3", "text": "only negative judgements"},
            {"_id": "q4", "text": "cholesterol"},
        ],
    )
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td3\t2\nq3\td2\t0\nq4\td2\t1\n", encoding="utf-8"
    )
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq2\td2\t1\n", encoding="utf-8")
    return root


def test_beir_parses_docs_queries_qrels(beir_dir):
    bench = load_beir(beir_dir)
    assert isinstance(bench, Benchmark)
    assert bench.name == "tinyfact"
    assert bench.docs == [
        BenchDoc("d1", "Aspirin", "Aspirin reduces fever."),
        BenchDoc("d2", "", "Statins lower cholesterol."),
        BenchDoc("d3", "", "No title field at all."),
    ]
    # q2 has no test judgement and q3 only a zero score, so both are dropped.
    assert bench.queries == [BenchQuery("q1", "does aspirin reduce fever"), BenchQuery("q4", "cholesterol")]
    assert bench.qrels == {"q1": {"d1": 1, "d3": 2}, "q4": {"d2": 1}}


def test_beir_other_split(beir_dir):
    bench = load_beir(beir_dir, split="train")
    assert [q.id for q in bench.queries] == ["q2"]
    assert bench.qrels == {"q2": {"d2": 1}}


def test_beir_records_are_frozen(beir_dir):
    bench = load_beir(beir_dir)
    with pytest.raises(AttributeError):
        bench.docs[0].title = "changed"


@pytest.mark.parametrize("missing", ["corpus.jsonl", "queries.jsonl", "qrels/test.tsv"])
def test_beir_missing_file_named(beir_dir, missing):
    (beir_dir / missing).unlink()
    with pytest.raises(FileNotFoundError, match=missing.split("/")[-1]):
        load_beir(beir_dir)


def test_beir_missing_split_named(beir_dir):
    with pytest.raises(FileNotFoundError, match="dev.tsv"):
        load_beir(beir_dir, split="dev")


def test_beir_bad_json_line(beir_dir):
    with (beir_dir / "corpus.jsonl").open("a", encoding="utf-8") as fh:
        fh.write("{not json\n")
    with pytest.raises(ValueError, match="corpus.jsonl:4"):
        load_beir(beir_dir)


def test_beir_qrels_for_unknown_query(beir_dir):
    with (beir_dir / "qrels" / "test.tsv").open("a", encoding="utf-8") as fh:
        fh.write("q9\td1\t1\n")
    with pytest.raises(ValueError, match="q9"):
        load_beir(beir_dir)


CRAN_DOCS = """\
.I 1
.T
wing in a slipstream .
.A
brenckman,m.
.B
j. ae. scs. 25, 1958, 324.
.W
wing in a slipstream .
  an experimental study of a wing .
.I 2
.T
simple shear flow .
.A
ting,l.
.B
department of aeronautical engineering.
.W
simple shear flow .
the flow is studied
.A
as a stray marker inside the abstract .
.I 3
.T
.A
.B
.W
"""

# Query ids are non-sequential, as in the real cran.qry, and use CRLF endings.
CRAN_QUERIES = ".I 001\r\n.W\r\nwhat similarity laws\r\nmust be obeyed .\r\n.I 002\r\n.W\r\nshear flow .\r\n.I 004\r\n.W\r\nheat conduction .\r\n"

CRAN_QRELS = """\
1 2 1
1 1 4
1 3 -1
2 2 -1
3 1 2 
3 2 3
3 3 5
"""


@pytest.fixture
def cran_dir(tmp_path):
    root = tmp_path / "cran"
    root.mkdir()
    (root / "cran.all.1400").write_text(CRAN_DOCS, encoding="ascii")
    (root / "cran.qry").write_bytes(CRAN_QUERIES.encode("ascii"))
    (root / "cranqrel").write_text(CRAN_QRELS, encoding="ascii")
    return root


def test_cranfield_docs(cran_dir):
    bench = load_cranfield(cran_dir)
    assert bench.name == "cranfield"
    assert [d.id for d in bench.docs] == ["1", "2", "3"]
    assert bench.docs[0] == BenchDoc(
        "1", "wing in a slipstream .", "wing in a slipstream .\n  an experimental study of a wing ."
    )
    # The stray .A inside the abstract stays abstract text; author is not in text.
    assert bench.docs[1].text == "simple shear flow .\nthe flow is studied\nas a stray marker inside the abstract ."
    assert "ting" not in bench.docs[1].text
    assert bench.docs[2] == BenchDoc("3", "", "")


def test_cranfield_queries_renumbered_in_file_order(cran_dir):
    bench = load_cranfield(cran_dir)
    # File ids 001, 002, 004 become 1, 2, 3; query 2 has only a -1 judgement so is dropped.
    assert bench.queries == [
        BenchQuery("1", "what similarity laws\nmust be obeyed ."),
        BenchQuery("3", "heat conduction ."),
    ]


def test_cranfield_gain_mapping(cran_dir):
    bench = load_cranfield(cran_dir)
    # Lower Cranfield grade = more relevant: gain = 5 - grade; -1 and 5 are dropped.
    assert bench.qrels == {"1": {"2": 4, "1": 1}, "3": {"1": 3, "2": 2}}


def test_cranfield_unknown_grade(cran_dir):
    (cran_dir / "cranqrel").write_text("1 1 7\n", encoding="ascii")
    with pytest.raises(ValueError, match="grade 7"):
        load_cranfield(cran_dir)


def test_cranfield_query_number_out_of_range(cran_dir):
    (cran_dir / "cranqrel").write_text("4 1 1\n", encoding="ascii")
    with pytest.raises(ValueError, match="outside 1..3"):
        load_cranfield(cran_dir)


@pytest.mark.parametrize("missing", ["cran.all.1400", "cran.qry", "cranqrel"])
def test_cranfield_missing_file_named(cran_dir, missing):
    (cran_dir / missing).unlink()
    with pytest.raises(FileNotFoundError, match=missing.replace(".", r"\.")):
        load_cranfield(cran_dir)
