"""The Dockerfile passes hadolint and installs the project as scripts/setup.sh does, without
compilers in the image it ships."""

from __future__ import annotations

import re

from tests.k8s.manifests import ROOT, lint_dockerfile

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _stages() -> list[str]:
    return re.split(r"^FROM ", DOCKERFILE, flags=re.MULTILINE)[1:]


def test_hadolint_finds_no_warnings_or_errors() -> None:
    assert lint_dockerfile() == []


def test_ignored_rules_say_why() -> None:
    lines = DOCKERFILE.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("# hadolint ignore="):
            rule = line.split("=", 1)[1].split(",")[0]
            before = "\n".join(lines[max(0, i - 6) : i])
            assert rule in before, f"{line}: no comment above it says why {rule} is ignored"


def test_builds_like_setup_sh() -> None:
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    (cmake_args,) = re.findall(r'CMAKE_ARGS:-([^}"]+)', setup)
    assert f"CMAKE_ARGS={cmake_args}" in DOCKERFILE
    assert re.search(r'pip install "\.\[local\]"', DOCKERFILE)


def test_final_stage_is_slim_non_root_and_has_no_compilers() -> None:
    builder, final = _stages()
    assert " AS builder" in builder
    assert "COPY --from=builder /opt/venv /opt/venv" in final
    for tool in ("build-essential", "gcc", "g++", "cmake", "clang"):
        assert tool not in final, tool
    (user,) = re.findall(r"^USER (\S+)", final, flags=re.MULTILINE)
    assert user.split(":")[0].isdigit() and user.split(":")[0] != "0"
    assert re.search(r"^ARG PYTHON_IMAGE=python:[\d.]+-slim", DOCKERFILE, flags=re.MULTILINE)


def test_dockerignore_keeps_local_state_out() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*")] == "*"  # an allow-list: nothing enters unless named
    for kept_out in (".venv", ".env", ".switchboard", ".tools", "tests"):
        assert f"!{kept_out}" not in ignore and f"!{kept_out}/" not in ignore
