"""Where the datasets live, how they are read, and small statistics shared by the suites."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
KESTREL = ROOT / "kestrel"
CORPUS = KESTREL / "corpus"
DATASETS = KESTREL / "datasets"
ROUTING = DATASETS / "routing.jsonl"
RETRIEVAL = DATASETS / "retrieval.jsonl"
ANSWERS = DATASETS / "answers.jsonl"
CALIBRATION = DATASETS / "judge_calibration.jsonl"
BASELINE = ROOT / "baseline.json"
RESULTS = ROOT / "results" / "eval"  # results/retrieval.json is tests/evals' (Python corpus)
SUFFIXES = {".md", ".txt", ".html"}
ROUTES = ("rag", "direct", "crew")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON Lines file, blank lines skipped."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def described(path: Path) -> dict[str, str]:
    """A dataset file as results name it: its path in the repository and a short hash of its
    content, so that a result names the exact data it came from."""
    return {
        "file": str(path.relative_to(ROOT.parent)),
        "version": hashlib.sha256(path.read_bytes()).hexdigest()[:12],
    }


def corpus_files() -> list[Path]:
    """The documents of the Kestrel Ridge corpus (its README and licence are not documents)."""
    return sorted(
        p
        for p in CORPUS.rglob("*")
        if p.suffix in SUFFIXES and p.name not in {"README.md", "LICENSE.md"}
    )


def normalise(text: str) -> str:
    """Lower case with runs of white space made one space: how passages and facts are matched."""
    return re.sub(r"\s+", " ", text).strip().lower()


def percentile(values: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile (`share` in 0..1) of `values`; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)
