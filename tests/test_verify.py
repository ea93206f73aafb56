"""verify: each check runs, is listed, and each one, broken on purpose, is named with exit 1."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Project
from tests.helpers import (
    build_template,
    set_mapping,
    shipped_mapping,
)
from tests.helpers import (
    split_byte_digest as byte_digest,
)
from tests.helpers import (
    split_install as install,
)
from tests.helpers import (
    split_listing as listing,
)
from tests.helpers import (
    split_run_cli as run_cli,
)
from tests.helpers import (
    split_V3 as V3,
)
from zepix_store import attribution, verify
from zepix_store.config import load_config

GROUP = "zepix_v3_logic_combined.db"
V6 = "zepix_v6_logic_01_1min.db"
MARKER = b"zz-unique-payload-marker-7"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_template(tmp_path_factory)


@pytest.fixture
def split_project(template: Path, project: Project) -> Project:
    """A project split once, with a unique text in one copied trade (for the byte flip)."""
    install(template, project)
    conn = sqlite3.connect(project.shared_db)
    try:
        conn.execute("UPDATE trades SET comment = ? WHERE trade_id = 'E-L1-001'", (MARKER.decode(),))
        conn.commit()
    finally:
        conn.close()
    done = run_cli("split", project)
    assert done.returncode == 0, done.stderr
    return project


def write(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for sql in statements:
            conn.execute(sql)
    finally:
        conn.close()


def flip_payload_byte(path: Path) -> None:
    """Change one byte inside a record's text (integrity_check cannot see it); the file is closed."""
    data = bytearray(path.read_bytes())
    at = data.index(MARKER)
    data[at + len(MARKER) - 1] = ord("8")
    path.write_bytes(bytes(data))


def zero_last_page(path: Path) -> None:
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[-page:] = bytes(page)
    path.write_bytes(bytes(data))


def test_clean_split_passes_every_check_and_lists_them(split_project: Project) -> None:
    done = run_cli("verify", split_project, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(done.stdout)
    names = {c["name"]: c["status"] for c in doc["checks"]}
    assert doc["ok"] is True and doc["failed"] == []
    for name in (f"integrity:{GROUP}", f"foreign_keys:{GROUP}", f"schema_version:{GROUP}", f"columns:{GROUP}",
                 f"indexes:{GROUP}", f"attribution:{GROUP}", f"mapping:{GROUP}", f"copies:{V3[0]}", "buckets",
                 "config:shared_db", f"config:{V3[0]}", "integrity:trading_bot.db"):
        assert names[name] == "ok", name
    assert names["schema_version:trading_bot.db"] == "warn"  # the legacy file split left alone
    assert names["foreign_keys:trading_bot.db"] == "warn"  # a legacy order whose chain is gone
    every = run_cli("verify", split_project, "-v")
    assert every.returncode == 0 and f"ok    copies:{V3[0]}: " in every.stdout


BREAKERS: dict[str, tuple[str, Callable[[Project], None]]] = {
    "integrity": (f"integrity:{GROUP}", lambda p: zero_last_page(p.data / GROUP)),
    "foreign_keys": (f"foreign_keys:{V6}", lambda p: write(
        p.data / V6, "INSERT INTO profit_booking_orders (order_id, chain_id, plugin_id) "
        "VALUES ('O-1', 'NO-SUCH-CHAIN', 'v6-logic-01-1min')")),
    "schema_version": (f"schema_version:{V6}", lambda p: write(p.data / V6, "PRAGMA user_version = 0")),
    "columns": (f"columns:{V6}", lambda p: write(p.data / V6, "ALTER TABLE sl_events RENAME COLUMN plugin_id TO owner")),
    "indexes": (f"indexes:{V6}", lambda p: write(p.data / V6, "DROP INDEX idx_trades_plugin_status_pnl")),
    "attribution": (f"attribution:{V6}", lambda p: write(
        p.data / V6, "INSERT INTO trades (trade_id, plugin_id) VALUES ('X', 'v6-logic-02-5min')")),
    "copies": (f"copies:{V3[0]}", lambda p: flip_payload_byte(p.data / GROUP)),
    "mapping": (f"mapping:{GROUP}", lambda p: set_mapping(p, {**shipped_mapping(p), "logic1": V3[0]})),
    "config": ("config:v6-logic-04-1h", lambda p: (p.data / "zepix_v6_logic_04_1h.db").unlink()),
}


@pytest.mark.parametrize("check", sorted(BREAKERS))
def test_each_check_broken_on_purpose_is_named_and_exits_1(split_project: Project, check: str) -> None:
    name, breaker = BREAKERS[check]
    breaker(split_project)
    done = run_cli("verify", split_project, "--json", "-q")  # -q: no progress line, however slow the machine
    assert done.returncode == 1, done.stdout
    doc = json.loads(done.stdout)
    assert name in doc["failed"], doc["failed"]
    assert name in done.stderr and done.stderr.count("\n") == 1, done.stderr


def test_a_one_byte_payload_change_is_reported_with_table_plugin_and_key(split_project: Project) -> None:
    conn = sqlite3.connect(f"file:{split_project.shared_db}?mode=ro", uri=True)
    try:
        trade = conn.execute("SELECT id FROM trades WHERE trade_id = 'E-L1-001'").fetchone()[0]
    finally:
        conn.close()
    flip_payload_byte(split_project.data / GROUP)
    done = run_cli("verify", split_project, "--json")
    assert done.returncode == 1
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    assert checks[f"integrity:{GROUP}"]["status"] == "ok"  # SQLite itself cannot tell
    detail = checks[f"copies:{V3[0]}"]["detail"]
    assert checks[f"copies:{V3[0]}"]["status"] == "FAIL"
    assert "trades" in detail and V3[0] in detail and f"id={trade}" in detail and "differ" in detail


def test_buckets_that_do_not_add_up_fail(split_project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    real = attribution.count_buckets

    def lose_a_row(conn: sqlite3.Connection, schema: str, table: str) -> attribution.TableBuckets:
        buckets = real(conn, schema, table)
        buckets.source_rows += 1 if table == "sl_events" else 0
        return buckets

    monkeypatch.setattr(attribution, "count_buckets", lose_a_row)
    report = verify.verify(load_config(split_project.configs))
    assert report.failed == ["buckets"]
    assert "sl_events" in next(c.detail for c in report.checks if c.name == "buckets")


def test_verify_writes_nothing_and_upgrades_nothing(split_project: Project) -> None:
    files = sorted(split_project.data.glob("*.db"))
    before = {f.name: byte_digest(f) for f in files}
    shape = listing(split_project.root)
    assert run_cli("verify", split_project).returncode == 0
    assert {f.name: byte_digest(f) for f in files} == before
    assert listing(split_project.root) == shape


def test_an_isolated_plugin_never_split_fails_config_and_copies(template: Path, project: Project) -> None:
    install(template, project)
    done = run_cli("verify", project, "--json")
    assert done.returncode == 1
    failed = json.loads(done.stdout)["failed"]
    assert "config:v3-logic-01-5min" in failed and "config:v6-logic-01-1min" in failed
    assert run_cli("verify", project, "--help").returncode == 0
