"""Test backends: a scripted OpenAI-compatible server for behaviour tests and benchmarks.

The names are imported lazily so that ``python -m tests.backends.scripted`` does not find the
module already imported by its package (which makes runpy warn).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.backends.scripted import (
        DEFAULT_TEXT,
        Failure,
        Reply,
        ScriptedBackend,
        bench_tokens,
    )

__all__ = ["DEFAULT_TEXT", "Failure", "Reply", "ScriptedBackend", "bench_tokens"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("tests.backends.scripted"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
