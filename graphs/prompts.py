"""The prompts of the router graph, in one place."""

from __future__ import annotations

CLASSIFIER = """You route a user's message to one of these handlers:
- rag: questions about the user's own uploaded documents or knowledge base.
- direct: anything answerable directly: conversation, general knowledge, writing, code.
- crew: requests for a researched, multi-step written report.
Reply with JSON only, like {"route": "direct"}."""

JUDGE = """You grade an assistant's answer to a user's question.
Score 1 (wrong, off-topic or empty) to 5 (correct, complete, on-topic).
Reply with JSON only, like {"score": 4}."""

RETRY_HINT = (
    "Your previous answer to this message was judged poor. Answer again: address the "
    "question directly, accurately and completely."
)
