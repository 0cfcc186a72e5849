"""The Milvus backend: a collection of chunks and one of their sentence spans, each behind an alias,
on a Milvus cluster or milvus-lite.

Chunks (alias <alias>; one row per chunk, primary key the chunk id):

    id            VARCHAR   chunk id ("<doc_id>:<start>-<end>"), as in chunks.jsonl
    doc_id        VARCHAR   its document
    council       VARCHAR   lower-cased; the PARTITION KEY, so one council's rows sit together and a
                            council filter by equality touches only its partitions (a council = a tenant)
    body, document_type, kind   VARCHAR, for the filters (body lower-cased)
    meeting_day   INT64     date.toordinal() of the meeting, -1 when undated
    row_hash      VARCHAR   hash of everything above but the id, of the chunk's content hash and of its
                            BM25 tokens: what incremental publishing compares
    sparse        SPARSE_FLOAT_VECTOR   the chunk's BM25 term weights (SPARSE_INVERTED_INDEX, metric IP)
    dense         FLOAT_VECTOR(dim)     the L2-normalised chunk vector (HNSW, M 16, efConstruction 200,
                            metric IP = cosine; searched with ef = max(128, 2 x depth))

Sentence spans (alias <alias>_sentences, collection <chunk collection>_sentences; one row per span):

    id            VARCHAR   "<chunk id>/<start>-<end>" (indexer/backends/base.py, sentence_id)
    chunk_id      VARCHAR   its chunk: what the best-sentence score filters on (`chunk_id in [...]`)
    row_hash      VARCHAR   the span's content hash (model + embedded text): its vector's identity
    dense         FLOAT_VECTOR(dim)     the L2-normalised sentence vector (FLAT, metric IP)

Their own collection, not rows of the chunks' one: chunk searches would otherwise walk a graph
five times as large and filter four rows in five out of it, and a sentence row needs none of the
chunk's filter fields or its BM25 terms. FLAT, not HNSW: the sentence collection is only ever
searched under `chunk_id in [the candidates]`, a couple of hundred chunks' sentences, where
Milvus scans the filtered rows whatever the index (and an HNSW graph would cost a sixth more
memory for nothing); FLAT scans them exactly, so the best-sentence scores equal the local
backend's. Best sentences are one search with limit 16,384 (Milvus's largest) over the
candidates' sentences, the maximum per chunk taken here; if the limit cut the hits, the chunks
not yet scored are asked again.

BM25 weights are computed here, not by Milvus's BM25 function: a term of the sparse vector is a
token of indexer/lexical.py (stemmed, stop-worded, as the local index sees it) and its weight is
bm25s's Lucene BM25 (k1 1.5, b 0.75) with the IDF and average length of the whole build, so a
query of those tokens (weight = count) scores each chunk by inner product exactly as bm25s does.
Milvus's own function was tried first: milvus-lite keeps BM25 statistics per segment, and with a
partition key each council's rows are separate segments, so a small council's IDF was its own
and off-topic chunks of it ranked first (its engine/collection.py says so in a TODO). The cost:
an incremental publish weights new rows with the build's statistics and leaves unchanged rows
with those of the build that wrote them, until the next rebuild (publish(rebuild=True)).

Consistency level: Bounded for searches (a read may miss writes of the last few seconds, which
a batch indexer never needs to see), Strong for the indexer's own check after it writes.

Publishing (the indexer, after a build): into the collection the alias serves when its
fingerprint (model, dimension, schema) matches: upserts of rows whose row_hash changed or is new,
deletes of ids no longer in the build. Otherwise - or when asked to rebuild - into a new
collection named <alias>_<fingerprint>_<stamp>, checked, then the alias is switched to it and the old
collection dropped: readers go through the alias and never see half an index. Sentence spans go
the same way beside their chunks: upserted where their content hash changed or is new, deleted by
id when gone; or a new <collection>_sentences filled and checked with the new chunk collection.
Milvus switches one alias per call: the sentences' alias is switched first, then the chunks', so
between the two calls (milliseconds) a reader may score old chunks against new sentences, and
a chunk whose every sentence changed gets no best-sentence score in that moment.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from indexer.backends.base import Scored, Sentence, Where, sentences_of
from indexer.lexical import tokenize
from indexer.records import Chunk, SentenceSpan

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # 2: sentence spans in their own collection beside the chunks'
DEFAULT_ALIAS = "boardpapers"
SEARCH_CONSISTENCY = "Bounded"
NUM_PARTITIONS = 64  # partition-key buckets; a few hundred councils hash into these
HNSW = {"M": 16, "efConstruction": 200}
BM25_K1, BM25_B = 1.5, 0.75  # bm25s's defaults
BATCH = 1000  # rows per insert/upsert request (well under Milvus's 64 MB message limit at dim 384)
MAX_LIMIT = 16_384  # Milvus's largest search limit (topk)
SENTENCES = "_sentences"  # suffix of the sentence spans' collection and alias


def sentence_collection(collection: str) -> str:
    """The sentence spans' collection (or alias) beside a chunk collection (or alias)."""
    return collection + SENTENCES


class MilvusError(Exception):
    """The Milvus backend cannot be used as configured (no server, no published collection)."""


def term_id(token: str) -> int:
    """A token's dimension in the sparse vectors: stable across builds (no vocabulary to keep)."""
    return zlib.crc32(token.encode()) % (2**32 - 1)  # Milvus sparse indices are below 2**32 - 1


def chunk_tokens(chunk: Chunk) -> list[str]:
    from indexer.store import lexical_text

    return tokenize(lexical_text(chunk))


@dataclass(frozen=True)
class Bm25Stats:
    """What BM25 needs from the whole build: rows, average length, document frequencies."""

    n: int
    avgdl: float
    df: dict[str, int]

    @classmethod
    def of(cls, token_lists: Sequence[list[str]]) -> "Bm25Stats":
        df: Counter = Counter()
        for tokens in token_lists:
            df.update(set(tokens))
        # bm25s gives a chunk without tokens one empty token, so its length is 1.
        total = sum(max(len(t), 1) for t in token_lists)
        return cls(len(token_lists), total / max(len(token_lists), 1), dict(df))

    def weights(self, tokens: list[str]) -> dict[int, float]:
        k1, b = BM25_K1, BM25_B
        dl = max(len(tokens), 1)
        out: dict[int, float] = {}
        for token, tf in Counter(tokens).items():
            df = self.df.get(token, 0)
            idf = math.log(1 + (self.n - df + 0.5) / (df + 0.5))
            out[term_id(token)] = idf * tf / (tf + k1 * (1 - b + b * dl / self.avgdl))
        return out


def query_weights(query: str) -> dict[int, float]:
    return {term_id(t): float(n) for t, n in Counter(tokenize(query)).items()}


def _row_fields(chunk: Chunk) -> dict[str, Any]:
    return {
        "id": chunk.id,
        "doc_id": chunk.doc_id,
        "council": (chunk.council or "").lower(),
        "body": (chunk.body or "").lower(),
        "document_type": chunk.document_type,
        "kind": chunk.kind,
        "meeting_day": chunk.meeting_date.toordinal() if chunk.meeting_date else -1,
    }


def _row(chunk: Chunk, vector: np.ndarray, tokens: list[str], stats: Bm25Stats) -> dict[str, Any]:
    row = _row_fields(chunk)
    row["row_hash"] = _row_hash(chunk, row, tokens)
    weights = stats.weights(tokens)
    # A chunk with no indexed word still needs a sparse value: one zero-weight dimension.
    row["sparse"] = weights or {0: 0.0}
    row["dense"] = np.asarray(vector, dtype=np.float32).tolist()
    return row


def _row_hash(chunk: Chunk, row: dict, tokens: list[str]) -> str:
    return hashlib.sha256(json.dumps([chunk.content_hash, row, tokens], sort_keys=True).encode()).hexdigest()[:24]


def _literal(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def filter_expr(where: Where) -> str:
    """The Milvus boolean expression for `where` (empty: everything).

    council and body are substring matches, as in the local backend; "%" and "_" typed in them act
    as LIKE wildcards, which can only widen the match.
    """
    parts = []
    if where.council:
        parts.append(f"council like {_literal('%' + where.council.lower() + '%')}")
    if where.body:
        parts.append(f"body like {_literal('%' + where.body.lower() + '%')}")
    if where.document_type:
        parts.append(f"document_type == {_literal(where.document_type)}")
    if where.date_from:
        parts.append(f"meeting_day >= {where.date_from.toordinal()}")
    if where.date_to:
        parts.append(f"(meeting_day >= 0 and meeting_day <= {where.date_to.toordinal()})")
    if where.decisions_only:
        parts.append('kind == "resolution"')
    return " and ".join(parts)


def fingerprint(dim: int, model: str) -> str:
    """What a collection's rows must share with a build to be updated in place: schema, dimension, model.

    It is part of the collection's name (milvus-lite keeps no collection description or properties).
    """
    model_hash = hashlib.sha256(model.encode()).hexdigest()[:8]
    return f"s{SCHEMA_VERSION}_d{dim}_{model_hash}"


def serving_collection(manifest: dict, uri: str | None = None) -> str:
    """The alias the manifest says this index was published under."""
    entry = manifest.get("milvus")
    if not entry:
        raise MilvusError("this index was not published to Milvus: build it with BOARDPAPERS_BACKEND=milvus "
                          "(python -m indexer build)")
    if uri and entry.get("uri") and entry["uri"] != uri:
        log.warning("index was published to %s; searching %s", entry["uri"], uri)
    return entry["alias"]


def _client(uri: str | None, token: str | None):
    try:
        from pymilvus import MilvusClient
        from pymilvus.exceptions import MilvusException
    except ImportError as e:
        raise MilvusError("the milvus backend needs pymilvus: pip install -e '.[milvus]'") from e

    if not uri:
        raise MilvusError("BOARDPAPERS_MILVUS_URI is not set (e.g. http://127.0.0.1:19530)")
    try:
        return MilvusClient(uri=uri, token=token or "", timeout=30)
    except MilvusException as e:
        raise MilvusError(f"cannot reach Milvus at {uri}: {e}") from e


class MilvusBackend:
    name = "milvus"

    def __init__(self, client, collection: str, sentences: str | None = None) -> None:
        self.client = client
        self.collection = collection
        self.sentences = sentences or sentence_collection(collection)

    @classmethod
    def connect(cls, uri: str | None, token: str | None, collection: str) -> "MilvusBackend":
        client = _client(uri, token)
        if not client.has_collection(collection):
            raise MilvusError(f"no collection or alias {collection!r} at {uri}: build the index with "
                              "BOARDPAPERS_BACKEND=milvus")
        sentences = sentence_collection(collection)
        if not client.has_collection(sentences):
            raise MilvusError(f"{collection!r} at {uri} has no sentence spans beside it ({sentences!r}; published "
                              "before they were): build the index again with BOARDPAPERS_BACKEND=milvus")
        client.load_collection(collection)
        client.load_collection(sentences)
        return cls(client, collection, sentences)

    # ------------------------------------------------------------ search

    def dense(self, vector: np.ndarray, where: Where, depth: int) -> Scored:
        res = self.client.search(
            self.collection, data=[np.asarray(vector, dtype=np.float32).tolist()], anns_field="dense",
            limit=depth, filter=filter_expr(where), output_fields=["id"],
            search_params={"metric_type": "IP", "params": {"ef": max(128, 2 * depth)}},
            consistency_level=SEARCH_CONSISTENCY)
        return [(h["id"], float(h["distance"])) for h in res[0]]

    def lexical(self, query: str, where: Where, depth: int) -> Scored:
        q = query_weights(query)
        if not q:
            return []
        res = self.client.search(
            self.collection, data=[q], anns_field="sparse", limit=depth, filter=filter_expr(where),
            output_fields=["id"], search_params={"metric_type": "IP"}, consistency_level=SEARCH_CONSISTENCY)
        return [(h["id"], float(h["distance"])) for h in res[0] if h["distance"] > 0]

    def best_sentences(self, vector: np.ndarray, chunk_ids: Sequence[str]) -> Scored:
        q = [np.asarray(vector, dtype=np.float32).tolist()]
        best: dict[str, float] = {}
        todo = list(dict.fromkeys(chunk_ids))
        while todo:
            res = self.client.search(
                self.sentences, data=q, anns_field="dense", limit=MAX_LIMIT,
                filter=f"chunk_id in {json.dumps(todo, ensure_ascii=False)}", output_fields=["chunk_id"],
                search_params={"metric_type": "IP"}, consistency_level=SEARCH_CONSISTENCY)
            hits = res[0]
            for h in hits:  # best first: a chunk's first hit is its best sentence
                best.setdefault(h["entity"]["chunk_id"], float(h["distance"]))
            if len(hits) < MAX_LIMIT:
                break
            # The limit cut the hits: the chunks still unscored have sentences below the cut.
            todo = [c for c in todo if c not in best]
        # Ties in the candidates' order, as the local backend breaks them.
        order = {c: i for i, c in enumerate(chunk_ids)}
        return sorted(best.items(), key=lambda kv: (-kv[1], order.get(kv[0], 0)))

    # ------------------------------------------------------------ writes

    def upsert(self, chunks: Sequence[Chunk], vectors: np.ndarray, stats: Bm25Stats | None = None,
               tokens: Sequence[list[str]] | None = None) -> None:
        """Write chunks by id. stats: the whole build's BM25 statistics (default: these chunks' own)."""
        tokens = [chunk_tokens(c) for c in chunks] if tokens is None else tokens
        stats = stats or Bm25Stats.of(tokens)
        for lo in range(0, len(chunks), BATCH):
            rows = [_row(c, vectors[i], tokens[i], stats) for i, c in enumerate(chunks[lo:lo + BATCH], start=lo)]
            self.client.upsert(self.collection, rows)

    def delete(self, ids: Sequence[str]) -> None:
        ids = list(ids)
        for lo in range(0, len(ids), BATCH):
            self.client.delete(self.collection, ids=ids[lo:lo + BATCH])

    def upsert_sentences(self, sentences: Sequence[Sentence], vectors: np.ndarray) -> None:
        for lo in range(0, len(sentences), BATCH):
            part = sentences[lo:lo + BATCH]
            vecs = np.asarray(vectors[lo:lo + len(part)], dtype=np.float32)
            rows = [{"id": x.id, "chunk_id": x.chunk_id, "row_hash": x.content_hash, "dense": v.tolist()}
                    for x, v in zip(part, vecs)]
            self.client.upsert(self.sentences, rows)

    def delete_sentences(self, ids: Sequence[str]) -> None:
        ids = list(ids)
        for lo in range(0, len(ids), BATCH):
            self.client.delete(self.sentences, ids=ids[lo:lo + BATCH])

    def count_sentences(self) -> int:
        return self.count(self.sentences)

    def count(self, collection: str | None = None) -> int:
        res = self.client.query(collection or self.collection, filter="", output_fields=["count(*)"],
                                consistency_level="Strong")
        return int(res[0]["count(*)"])

    def row_hashes(self, collection: str | None = None) -> dict[str, str]:
        """{id: row_hash} of every row held (chunks, or the sentence collection), read in pages."""
        out: dict[str, str] = {}
        it = self.client.query_iterator(collection or self.collection, batch_size=5000, filter="",
                                        output_fields=["id", "row_hash"], consistency_level="Strong")
        try:
            while batch := it.next():
                out.update((r["id"], r["row_hash"]) for r in batch)
        finally:
            it.close()
        return out


# ---------------------------------------------------------------- collections and publishing


def create_collection(client, name: str, dim: int) -> None:
    from pymilvus import DataType

    s = client.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("id", DataType.VARCHAR, is_primary=True, max_length=1024)
    s.add_field("doc_id", DataType.VARCHAR, max_length=1024)
    s.add_field("council", DataType.VARCHAR, max_length=512, is_partition_key=True)
    s.add_field("body", DataType.VARCHAR, max_length=512)
    s.add_field("document_type", DataType.VARCHAR, max_length=64)
    s.add_field("kind", DataType.VARCHAR, max_length=64)
    s.add_field("meeting_day", DataType.INT64)
    s.add_field("row_hash", DataType.VARCHAR, max_length=64)
    s.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    s.add_field("dense", DataType.FLOAT_VECTOR, dim=dim)
    ip = client.prepare_index_params()
    ip.add_index("dense", index_type="HNSW", metric_type="IP", params=HNSW)
    ip.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
    client.create_collection(name, schema=s, index_params=ip, num_partitions=NUM_PARTITIONS,
                             consistency_level=SEARCH_CONSISTENCY)


def create_sentence_collection(client, name: str, dim: int) -> None:
    from pymilvus import DataType

    s = client.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("id", DataType.VARCHAR, is_primary=True, max_length=1100)
    s.add_field("chunk_id", DataType.VARCHAR, max_length=1024)
    s.add_field("row_hash", DataType.VARCHAR, max_length=64)
    s.add_field("dense", DataType.FLOAT_VECTOR, dim=dim)
    ip = client.prepare_index_params()
    ip.add_index("dense", index_type="FLAT", metric_type="IP")
    # The filter every sentence search has (`chunk_id in [...]`) resolved by an index, not a scan.
    ip.add_index("chunk_id", index_type="INVERTED")
    client.create_collection(name, schema=s, index_params=ip, consistency_level=SEARCH_CONSISTENCY)


def _point(client, alias: str, name: str) -> None:
    if alias in client.list_aliases().get("aliases", []):
        client.alter_alias(name, alias)
    else:
        client.create_alias(name, alias)


def _serving(client, alias: str) -> str | None:
    if alias not in client.list_aliases().get("aliases", []):
        return None
    return client.describe_collection(alias)["collection_name"]


def publish(chunks: Sequence[Chunk], vectors: np.ndarray, spans: Sequence[SentenceSpan],
            sentence_vectors: np.ndarray | None, model: str, *, uri: str | None, token: str | None = None,
            alias: str = DEFAULT_ALIAS, rebuild: bool = False) -> dict[str, Any]:
    """Make the collections behind `alias` hold exactly these chunks and their sentence spans.

    spans and sentence_vectors: the index folder's (row i of the vectors is span i).
    Returns the manifest entry saying what serves: uri, aliases, collections, how they were written.
    """
    t0 = time.perf_counter()
    client = _client(uri, token)
    dim = int(vectors.shape[1]) if vectors.ndim == 2 else 0
    s_alias = sentence_collection(alias)
    current, current_s = _serving(client, alias), _serving(client, s_alias)
    tokens = [chunk_tokens(c) for c in chunks]
    stats = Bm25Stats.of(tokens)
    sentences = sentences_of([c.id for c in chunks], spans)
    s_vectors = np.zeros((0, dim), np.float32) if sentence_vectors is None or not len(sentences) else sentence_vectors
    prefix = f"{alias}_{fingerprint(dim, model)}_"
    compatible = (current is not None and current.startswith(prefix)
                  and current_s == sentence_collection(current))
    if compatible and not rebuild:
        backend = MilvusBackend(client, current)
        held = backend.row_hashes()
        want = {c.id for c in chunks}
        changed = [i for i, c in enumerate(chunks) if held.get(c.id) != _row_hash(c, _row_fields(c), tokens[i])]
        gone = [i for i in held if i not in want]
        backend.upsert([chunks[i] for i in changed], vectors[changed] if changed else vectors[:0], stats,
                       [tokens[i] for i in changed])
        backend.delete(gone)
        # Sentence spans by their content hash: a changed vector is a changed hash.
        held_s = backend.row_hashes(backend.sentences)
        want_s = {x.id for x in sentences}
        changed_s = [i for i, x in enumerate(sentences) if held_s.get(x.id) != x.content_hash]
        gone_s = [i for i in held_s if i not in want_s]
        backend.upsert_sentences([sentences[i] for i in changed_s], s_vectors[changed_s] if changed_s else s_vectors[:0])
        backend.delete_sentences(gone_s)
        mode, name = "incremental", current
        written, deleted, written_s, deleted_s = len(changed), len(gone), len(changed_s), len(gone_s)
    else:
        name = f"{prefix}{time.strftime('%Y%m%dT%H%M%S')}_{time.monotonic_ns() % 10**6}"
        backend = MilvusBackend(client, name)
        try:
            create_collection(client, name, dim)
            create_sentence_collection(client, backend.sentences, dim)
            backend.upsert(chunks, vectors, stats, tokens)
            backend.upsert_sentences(sentences, s_vectors)
            for n in (name, backend.sentences):
                client.flush(n)
                client.load_collection(n)
        except BaseException:
            _drop(client, name, backend.sentences)  # half filled and never served
            raise
        mode, written, deleted, written_s, deleted_s = "rebuild", len(chunks), 0, len(sentences), 0
    held_now, held_s_now = backend.count(), backend.count_sentences()
    if held_now != len(chunks) or held_s_now != len(sentences):
        if mode == "rebuild":
            _drop(client, name, backend.sentences)  # never served: the aliases still name the old ones
        raise MilvusError(f"Milvus collection {name!r} holds {held_now} chunks and {held_s_now} sentence spans "
                          f"after publishing {len(chunks)} and {len(sentences)}")
    if mode == "rebuild":
        # The switch readers see: one alias operation each, after the new collections are whole and
        # loaded; sentences first (module docstring: the moment between the two).
        _point(client, s_alias, backend.sentences)
        _point(client, alias, name)
        _drop(client, *(c for c in (current, current_s) if c is not None))
    log.info("published %d chunks and %d sentence spans to Milvus %s as %s (%s: %d + %d written, %d + %d deleted, "
             "%.1fs)", len(chunks), len(sentences), uri, alias, mode, written, written_s, deleted, deleted_s,
             time.perf_counter() - t0)
    return {"uri": uri, "alias": alias, "collection": name, "mode": mode, "chunks": len(chunks),
            "written": written, "deleted": deleted, "sentence_alias": s_alias,
            "sentence_collection": backend.sentences, "sentences": len(sentences),
            "sentences_written": written_s, "sentences_deleted": deleted_s, "schema_version": SCHEMA_VERSION}


def _drop(client, *names: str) -> None:
    for n in names:
        if client.has_collection(n):
            client.drop_collection(n)


def publish_index(settings, rebuild: bool = False) -> dict[str, Any]:
    """Publish the current build at settings.index_dir to settings.milvus_uri and record it in its manifest."""
    from indexer import store

    try:
        from pymilvus.exceptions import MilvusException
    except ImportError as e:
        raise MilvusError("the milvus backend needs pymilvus: pip install -e '.[milvus]'") from e
    index = store.load_index(settings.index_dir)
    try:
        entry = publish(index.chunks, index.vectors, index.sentences, index.sentence_vectors,
                        index.manifest["model"]["name"], uri=settings.milvus_uri, token=settings.milvus_token,
                        alias=settings.milvus_alias, rebuild=rebuild)
    except MilvusException as e:
        raise MilvusError(f"Milvus at {settings.milvus_uri} failed: {e}") from e
    store.record_backend(index.path, "milvus", entry)
    return entry
