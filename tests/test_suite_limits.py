"""The suite's own limits: a hung test fails alone and by name, and the run still ends with its summary line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO, child_env


def test_a_hung_test_is_named_with_its_stack_and_the_run_reaches_its_summary(tmp_path: Path) -> None:
    (tmp_path / "test_hang.py").write_text(
        "import time\n\n"
        "def test_hangs():\n    time.sleep(60)\n\n"
        "def test_after_it():\n    assert True\n")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-o", "timeout=2",
                           "--rootdir", str(REPO), "-c", str(REPO / "pyproject.toml"), str(tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60, env=child_env(), check=False)
    assert done.returncode == 1, done.stdout[-2000:]
    assert "Timeout" in done.stdout and "test_hang.py" in done.stdout and "time.sleep(60)" in done.stdout
    assert "1 failed, 1 passed" in done.stdout
