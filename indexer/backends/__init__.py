"""Where the search structures of an index live: this folder's files (local) or a Milvus server.

`base.py` is the interface, one module per implementation. The chunk store (documents, texts,
chunks, sentence spans, decisions) stays in the index folder either way; a backend holds what
ranks chunks: their vectors, their BM25 terms and the fields the filters read.
"""

from __future__ import annotations

from indexer.backends.base import BACKENDS, SearchBackend, Where, check_backend

__all__ = ["BACKENDS", "SearchBackend", "Where", "check_backend", "open_backend"]


def open_backend(name: str, index, *, uri: str | None = None, token: str | None = None,
                 collection: str | None = None) -> SearchBackend:
    """The backend called `name` over a loaded index (indexer.store.LoadedIndex).

    milvus: the collection (alias) the index's manifest says serves it, unless `collection` names one.
    """
    check_backend(name)
    if name == "local":
        from indexer.backends.local import LocalBackend

        return LocalBackend(index)
    from indexer.backends.milvus import MilvusBackend, serving_collection

    return MilvusBackend.connect(uri, token, collection or serving_collection(index.manifest, uri))
