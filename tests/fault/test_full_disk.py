"""B4/B5: the bot keeps writing until the disk (or the file-size limit) says no.

Each write is one library call of two rows. The first refused call must raise a typed error (StoreFullError
or StoreIOError, exit code 3) naming the file, leave nothing of itself behind, and leave the connection
usable; every call acknowledged before it stays readable, also after the file is reopened.

B4's unprivileged variant needs a test-only way to set `PRAGMA max_page_count` on the store's writer
connection; the library has none (see the report), so B4 runs on a real tmpfs (root only) and B5 covers
the I/O-error path without privileges through RLIMIT_FSIZE.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

from tests.helpers import (
    Project,
    byte_checksum,
    child_env,
    logical_checksum,
    privileged,
    query,
    run,
    run_python,
    schema_checksum,
    tmpfs,
)
from zepix_store.legacy_data import build_legacy_db

PLUGIN = "v6-logic-01-1min"

WRITE_UNTIL_REFUSED = """
import asyncio, json, os, resource, sqlite3, sys
from zepix_store import Store, StoreError, Trade

configs, db_path, fsize, ballast = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if fsize:
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, resource.RLIM_INFINITY))
if ballast != "-":
    with open(ballast, "wb") as f:  # room to give back once the disk is full
        f.write(os.urandom(256 * 1024))

def pair(tid):
    return [Trade(trade_id=tid, symbol="EURUSD", status="closed", pnl=1.0, comment="x" * 3000),
            Trade(trade_id=tid + "/child", symbol="EURUSD", status="open", chain_id=tid, comment="y" * 3000)]

async def main():
    out = {"acked": 0}
    async with Store.open(configs) as store:
        db = store.for_plugin(sys.argv[5])
        for i in range(100000):
            try:
                await db.save_trades(pair(f"t{i}"))
            except StoreError as exc:
                out.update(error_type=type(exc).__name__, error=str(exc), exit_code=exc.exit_code)
                break
            out["acked"] = i + 1
        failed = f"t{out['acked']}"
        out["failed_rows_visible"] = sum([await db.get_trade(failed) is not None,
                                          await db.get_trade(failed + "/child") is not None])
        out["rows_visible"] = (await db.get_statistics())["total_trades"]  # the connection still answers
        if ballast != "-":
            os.unlink(ballast)
        else:
            resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        await db.save_trades(pair("after"))  # room again: writes work again on the same connection
        out["after_ok"] = await db.get_trade("after/child") is not None
    if ballast != "-":  # the tmpfs vanishes with this process: check the reopened file here
        conn = sqlite3.connect(db_path)
        out["quick_check"] = conn.execute("PRAGMA quick_check").fetchone()[0]
        out["rows_after_reopen"] = conn.execute("SELECT count(*) FROM trades").fetchone()[0]
        conn.close()
    print(json.dumps(out))

asyncio.run(main())
"""


def _check_refusal(out: dict[str, object], db: Path, kind: str) -> None:
    assert out["error_type"] == kind, out
    assert str(db) in str(out["error"]) and "\n" not in str(out["error"]), out
    assert out["exit_code"] == 3
    assert out["acked"] > 0, "the limit hit before any write: the test proved nothing"
    assert out["failed_rows_visible"] == 0, "the refused transaction left rows behind"
    assert out["rows_visible"] == out["acked"], "every acknowledged pair has one closed trade"


@privileged
def test_disk_full_on_tmpfs_raises_store_full_and_recovers(project: Project, figures) -> None:
    db = project.isolated_db(PLUGIN)
    result = run_python(WRITE_UNTIL_REFUSED, project.configs, db, 0, project.data / "ballast", PLUGIN,
                        prefix=tmpfs("1m", project.data), timeout=120)
    assert result.rc == 0, result.stderr
    out = json.loads(result.stdout)
    _check_refusal(out, db, "StoreFullError")
    assert "disk full" in str(out["error"])
    assert out["after_ok"] is True
    assert out["quick_check"] == "ok"
    assert out["rows_after_reopen"] == out["acked"] * 2 + 2
    figures("B4 live writes on a full disk (tmpfs 1 MiB)",
            f"FULL raised after {out['acked']} acked txns ({out['acked'] * 2} rows); acked lost 0; "
            f"refused txn rows left 0; recovery after freeing space ok; quick_check ok")


def test_file_size_limit_raises_store_io_error_and_file_stays_sound(project: Project, figures) -> None:
    db = project.isolated_db(PLUGIN)
    result = run_python(WRITE_UNTIL_REFUSED, project.configs, db, 1 << 20, "-", PLUGIN, timeout=120)
    assert result.rc == 0, result.stderr
    out = json.loads(result.stdout)
    _check_refusal(out, db, "StoreIOError")
    assert "I/O error" in str(out["error"])
    assert out["after_ok"] is True
    # Reopened: the file is sound and holds exactly the acknowledged pairs and the one written after.
    assert query(db, "PRAGMA quick_check") == [("ok",)]
    rows = query(db, "SELECT count(*), count(DISTINCT trade_id) FROM trades")
    assert rows == [(out["acked"] * 2 + 2, out["acked"] * 2 + 2)]
    assert query(db, "SELECT count(*) FROM trades WHERE trade_id = ?", (f"t{out['acked']}",)) == [(0,)]
    figures("B5 I/O error path (RLIMIT_FSIZE 1 MiB)",
            f"IOERR at txn {out['acked'] + 1} ({out['acked']} acked, lost 0); refused txn rows left 0; same "
            f"connection writes again once the limit is lifted; integrity after reopen ok")


def test_skipped_privileged_test_fails_the_run_under_ci() -> None:
    # The guard of conftest.py: a privileged test skipped for want of root is fine locally, a failure in CI.
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
            "-p", "no:benchmark",
            f"{__file__}::test_disk_full_on_tmpfs_raises_store_full_and_recovers"]
    local = run(args, timeout=120, env=child_env(CI="", ZEPIX_TEST_UNPRIVILEGED="1"))
    assert local.rc == 0 and "1 skipped" in local.stdout, local.stdout
    ci = run(args, timeout=120, env=child_env(CI="true", ZEPIX_TEST_UNPRIVILEGED="1"))
    assert ci.rc == 1 and "SKIPPED-PRIVILEGED" in ci.stdout, ci.stdout


def test_harness_checksums_see_storage_classes_and_schema(tmp_path: Path) -> None:
    # The shared checksums must tell 1 from 1.0 from '1' and -0.0 from 0.0, ignore insertion order, and see
    # a half-added column; the byte checksum includes the -wal.
    def make(name: str, rows: list[tuple[object, ...]], extra_column: bool = False) -> Path:
        path = tmp_path / name
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v)")
        if extra_column:
            conn.execute("ALTER TABLE t ADD COLUMN plugin_id TEXT")
        conn.executemany("INSERT INTO t (k, v) VALUES (?, ?)", rows)
        conn.close()
        return path

    base = make("a.db", [(1, 1), (2, -0.0)])
    assert logical_checksum(make("b.db", [(2, -0.0), (1, 1)])) == logical_checksum(base)
    for name, rows in (("c.db", [(1, 1.0), (2, -0.0)]), ("d.db", [(1, "1"), (2, -0.0)]),
                       ("e.db", [(1, 1), (2, 0.0)])):
        assert logical_checksum(make(name, rows)) != logical_checksum(base), name
    assert schema_checksum(make("f.db", [(1, 1), (2, -0.0)], extra_column=True)) != schema_checksum(base)
    conn = sqlite3.connect(base, isolation_level=None)
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    before = byte_checksum(base)
    conn.execute("INSERT INTO t VALUES (3, 3)")  # lands in the -wal only
    assert byte_checksum(base) != before
    conn.close()


VERIFY_ON_A_FULL_DISK = """
set -e
cp "$1" "$2/trading_bot.db"
"$4" -m zepix_store migrate --config "$3" -q >/dev/null
"$4" -m zepix_store split --config "$3" -q >/dev/null
dd if=/dev/zero of="$2/fill" bs=4k 2>/dev/null || true  # the disk is now full
set +e
"$4" -m zepix_store verify --config "$3" -q >/dev/null 2>"$2/../verify.err"
echo "rc=$?"
cat "$2/../verify.err"
"""


@privileged
def test_verify_on_a_full_disk_says_it_could_not_look_with_exit_3(project: Project, tmp_path: Path) -> None:
    # A full disk keeps SQLite from making the -shm a read of a WAL file needs: verify could not look, which a
    # script must not read as "the data is damaged" (exit 1).
    legacy = tmp_path / "legacy.db"
    build_legacy_db(legacy, trades=40, seed=3)
    script = ["sh", "-c", VERIFY_ON_A_FULL_DISK, "verify-full", str(legacy), str(project.data), str(project.configs),
              sys.executable]
    result = run([*tmpfs("16m", project.data), *script], 120, env=child_env())
    assert result.rc == 0, result.stderr
    assert "rc=3" in result.stdout, result.stdout
    assert "could not check integrity:trading_bot.db" in result.stdout and "disk full" in result.stdout
