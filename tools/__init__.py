"""Tools that graphs and crews call: thin, typed wrappers over `memory`."""

from tools.retrieval import SearchDocumentsTool

__all__ = ["SearchDocumentsTool"]
