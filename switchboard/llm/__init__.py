"""Model access through one seam: OpenAI-compatible backends as configuration, failover above."""

from switchboard.llm._breaker import CircuitBreaker, CircuitState
from switchboard.llm._pool import (
    RUN_USAGE,
    Backend,
    ChatStream,
    Completion,
    LLMPool,
    Message,
    Usage,
)

__all__ = [
    "RUN_USAGE",
    "Backend",
    "ChatStream",
    "CircuitBreaker",
    "CircuitState",
    "Completion",
    "LLMPool",
    "Message",
    "Usage",
]
