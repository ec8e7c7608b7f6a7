"""The fault table: each test records one row (fault, what the client sees, data lost, recovery
time), and the end of the session prints them as a markdown table. Recovery times are recorded,
never asserted: they depend on the machine."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

_ROWS = pytest.StashKey[list["FaultRow"]]()


@dataclass(frozen=True, slots=True)
class FaultRow:
    fault: str
    client_sees: str
    data_lost: str
    recovery_s: float


class FaultTable:
    """Where a test writes its row; `data_lost` is what the test checked was kept, and a row is
    recorded only once the test's assertions about it have passed."""

    def __init__(self, rows: list[FaultRow]) -> None:
        self._rows = rows

    def record(self, fault: str, client_sees: str, data_lost: str, recovery_s: float) -> None:
        self._rows.append(FaultRow(fault, client_sees, data_lost, recovery_s))


@pytest.fixture
def fault_table(request: pytest.FixtureRequest) -> FaultTable:
    return FaultTable(request.config.stash.setdefault(_ROWS, []))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    rows = terminalreporter.config.stash.get(_ROWS, [])
    if not rows:
        return
    terminalreporter.section("fault table")
    terminalreporter.write_line("| fault | client sees | data lost | recovery time |")
    terminalreporter.write_line("| --- | --- | --- | --- |")
    for row in rows:
        terminalreporter.write_line(
            f"| {row.fault} | {row.client_sees} | {row.data_lost} | {row.recovery_s:.2f} s |"
        )
