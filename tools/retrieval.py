"""The document search tool: what agents (and any OpenAI-style tool-calling model) call to find
passages in the tenant's documents."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from memory.retrieval import Retriever
from memory.store import SearchFilter


@dataclass(frozen=True, slots=True)
class SearchDocumentsTool:
    """`search_documents(query, k)` over one tenant's documents."""

    retriever: Retriever
    tenant: str
    name: str = "search_documents"
    description: str = (
        "Search the user's uploaded documents and return the most relevant passages, each with "
        "its document title, section and a relevance score."
    )

    def schema(self) -> dict[str, Any]:
        """The tool in OpenAI's function-calling format."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": {
                    "type": "object",
                    "properties": {
                        "query": {"type": "string", "description": "What to look for."},
                        "k": {"type": "integer", "minimum": 1, "maximum": 20, "default": 5},
                    },
                    "required": ["query"],
                    "additionalProperties": False,
                },
            },
        }

    async def __call__(self, query: str, k: int = 5) -> list[dict[str, Any]]:
        """The `k` best passages for `query` (1 ≤ k ≤ 20), as JSON-ready dicts."""
        found = await self.retriever.retrieve(
            query, SearchFilter(tenant=self.tenant), max(1, min(k, 20))
        )
        return [source.public() for source in found]
