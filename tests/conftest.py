"""Fixtures shared by every test (helpers live in tests/helpers.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

# Re-exported for the test modules that still import them from here (test_split, test_merge, test_verify,
# test_store, test_isolation: rewritten on other branches); new code imports them from tests.helpers.
from .helpers import REPO, Project, copy_database, hold_write_lock, query

__all__ = ["REPO", "Project", "copy_database", "hold_write_lock", "query"]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path / "proj")


@pytest.fixture
def no_leaked_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not leaked, f"leaked threads: {leaked}"
