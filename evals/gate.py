"""The regression gate: each metric named in the committed baseline (`evals/baseline.json`) must
be at least the baseline's value less its tolerance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evals._data import BASELINE


def load_baseline(path: Path = BASELINE) -> dict[str, Any]:
    baseline: dict[str, Any] = json.loads(path.read_text())
    return baseline


def check(results: dict[str, dict[str, Any]], baseline: dict[str, Any]) -> list[str]:
    """The regressions of `results` (suite -> suite result) against `baseline`, one line each;
    empty when the gate passes. Suites not in `results` are not checked."""
    tolerance = float(baseline.get("tolerance", 0.0))
    failures = []
    for suite, floors in baseline["suites"].items():
        if suite not in results:
            continue
        metrics = results[suite].get("metrics", {})
        for name, floor in floors.items():
            value = metrics.get(name)
            if value is None:
                failures.append(f"{suite}: {name} is missing")
            elif value < floor - tolerance:
                failures.append(
                    f"{suite}: {name} = {value:.4f} < baseline {floor:.4f} - {tolerance}"
                )
    return failures
