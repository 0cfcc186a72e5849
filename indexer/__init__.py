"""Board papers indexer: parse, structure, chunk, embed and store council board papers."""

__version__ = "0.1.0"
