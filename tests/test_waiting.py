"""stats names the trades that wait in the shared file for isolated plugins whose files split has not made yet."""

from __future__ import annotations

import json

from tests.helpers import Project, byte_digest, read_sql, run_cli
from zepix_store._sample.legacy import build_legacy_db


def stats_json(project: Project) -> dict[str, object]:
    done = run_cli("stats", "--json", "-q", config=project)
    assert done.rc == 0, done.stderr
    doc: dict[str, object] = json.loads(done.stdout)
    return doc


def test_after_migrate_stats_counts_the_trades_waiting_for_split(project: Project) -> None:
    build_legacy_db(project.shared_db, trades=300)
    assert run_cli("migrate", "-q", config=project).rc == 0
    expected = dict(read_sql(project.shared_db, "SELECT plugin_id, count(*) FROM trades WHERE plugin_id != 'legacy' "
                                                "GROUP BY plugin_id ORDER BY plugin_id"))
    assert len(expected) == 3  # the three v3 logics of the mapping
    before = byte_digest(project.shared_db)
    waiting = stats_json(project)["waiting"]
    assert waiting == {"shared_db": str(project.shared_db), "migrated": True, "trades": sum(expected.values()),
                       "by_plugin": expected, "command": "zepix-store split"}
    human = run_cli("stats", "-q", config=project)
    assert human.rc == 0
    note = f"note: {sum(expected.values()):,} trades of {len(expected)} plugins wait in data/trading_bot.db"
    assert note in human.stdout and "run `zepix-store split`" in human.stdout
    assert byte_digest(project.shared_db) == before  # counted read-only
    assert run_cli("split", "-q", config=project).rc == 0
    assert stats_json(project)["waiting"] is None  # every file made: nothing waits
    assert "wait in" not in run_cli("stats", "-q", config=project).stdout


def test_an_unmigrated_shared_file_is_named_with_split_dry_run(project: Project) -> None:
    build_legacy_db(project.shared_db, trades=120)
    total = read_sql(project.shared_db, "SELECT count(*) FROM trades")[0][0]
    waiting = stats_json(project)["waiting"]
    assert waiting == {"shared_db": str(project.shared_db), "migrated": False, "trades": total, "by_plugin": {},
                       "command": "zepix-store split --dry-run"}
    out = run_cli("stats", "-q", config=project).stdout
    assert f"data/trading_bot.db holds {total:,} trades not yet attributed" in out
    assert "`zepix-store split --dry-run`" in out


def test_no_note_when_every_plugin_reads_the_shared_file(project: Project) -> None:
    build_legacy_db(project.shared_db, trades=120)
    project.set_all_shared(True)
    assert run_cli("migrate", "-q", config=project).rc == 0
    assert stats_json(project)["waiting"] is None


def test_only_the_plugins_asked_for_are_counted(project: Project) -> None:
    build_legacy_db(project.shared_db, trades=120)
    assert run_cli("migrate", "-q", config=project).rc == 0
    done = run_cli("stats", "--json", "-q", "--plugin", "v3-logic-02-15min", config=project)
    waiting = json.loads(done.stdout)["waiting"]
    assert list(waiting["by_plugin"]) == ["v3-logic-02-15min"]
