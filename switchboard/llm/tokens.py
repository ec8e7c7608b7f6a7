"""Token counting for backends that do not report usage (llama.cpp's server omits it when
streaming). Completion tokens are counted exactly as the number of streamed content chunks (these
servers send one token per chunk); prompt tokens are estimated, since no tokenizer for an
arbitrary backend model is available offline.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

# Words, numbers and single punctuation marks: close to BPE counts for English prose (a BPE
# tokenizer splits long words further, which the 4-characters rule below accounts for).
_PIECE = re.compile(r"\w+|[^\w\s]")
_MESSAGE_OVERHEAD = 4  # role and separators, as chat templates add them


def estimate_tokens(text: str) -> int:
    """An estimate of the number of BPE tokens in `text`."""
    count = 0
    for match in _PIECE.finditer(text):
        count += 1 + (len(match.group()) - 1) // 6
    return count


def estimate_prompt_tokens(messages: Iterable[Mapping[str, Any]]) -> int:
    """An estimate of the prompt tokens of a chat request."""
    total = 2
    for message in messages:
        content = message.get("content")
        total += _MESSAGE_OVERHEAD + (estimate_tokens(content) if isinstance(content, str) else 0)
    return total
