"""Hooks and fixtures of the fault tests: privileged tests under CI, and the figures they record.

Their helpers (checksums, subprocess runners, random SIGKILL, privileged wrappers) are in tests/helpers.py.

Privileged tests (`@pytest.mark.privileged`: mount namespaces, setpriv) are skipped when euid != 0, but with
CI=true a skipped privileged test fails the run: CI runs as root, so a skip there would hide a regression.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ..helpers import CI, IS_ROOT

FIGURES_FILE = Path(__file__).with_name("figures.txt")

_FIGURES = pytest.StashKey[list[tuple[str, str]]]()
_SKIPPED_PRIVILEGED = pytest.StashKey[list[str]]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if IS_ROOT:
        return
    skip = pytest.mark.skip(reason="privileged: needs euid 0 (mount namespaces, setpriv)")
    for item in items:
        if item.get_closest_marker("privileged"):
            item.add_marker(skip)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    # an expected failure (xfail) reports as skipped too: it ran, so it hides nothing
    if getattr(report, "skipped", False) and not hasattr(report, "wasxfail") and item.get_closest_marker("privileged"):
        item.config.stash.setdefault(_SKIPPED_PRIVILEGED, []).append(item.nodeid)
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    skipped = session.config.stash.get(_SKIPPED_PRIVILEGED, [])
    if CI and skipped and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --- figures ------------------------------------------------------------------------------------------------------


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[[str, str], None]:
    """`figures(test_id, line)` records one of the plan's figure lines for the summary and figures.txt."""
    lines = request.config.stash.setdefault(_FIGURES, [])

    def record(test_id: str, line: str) -> None:
        lines.append((test_id, line))

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    skipped = config.stash.get(_SKIPPED_PRIVILEGED, [])
    if skipped and CI:
        terminalreporter.section("privileged tests skipped under CI=true (run failed)", red=True)
        for nodeid in skipped:
            terminalreporter.line(f"SKIPPED-PRIVILEGED {nodeid}")
    lines = config.stash.get(_FIGURES, [])
    if not lines:
        return
    terminalreporter.section("fault figures")
    text = [f"{test_id}: {line}" for test_id, line in lines]
    for entry in text:
        terminalreporter.line(entry)
    # A partial run replaces only its own tests' lines; sorted by id, the file follows the plan's order.
    ran = {test_id for test_id, _ in lines}
    old = FIGURES_FILE.read_text().splitlines() if FIGURES_FILE.exists() else []
    kept = [entry for entry in old if entry and not entry.startswith("#") and entry.split(": ", 1)[0] not in ran]
    merged = sorted(kept + text, key=lambda entry: entry.split(": ", 1)[0])
    header = f"# tests/fault figures (last run {time.strftime('%Y-%m-%d %H:%M:%S')}, CI={'true' if CI else 'unset'})"
    FIGURES_FILE.write_text("\n".join([header, *merged]) + "\n")
