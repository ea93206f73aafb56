"""Attribution rules no other test pins down (SPEC 5): the order of mapping_columns, and '' linking nothing.

Each case runs through migrate (owners in place) and split (owners' isolated files), on a small legacy file
written by hand, so the expected owner of every trade is read off the rows themselves.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import yaml

from tests.helpers import Project, query, run_cli, set_mapping
from zepix_store._sample.legacy_schema import LEGACY_SCHEMA

A, B = "v6-logic-01-1min", "v6-logic-02-5min"  # each in a file of its own
LEGACY = "legacy"
TRADES = "(trade_id, symbol, status, pnl, logic_type, strategy, chain_id, session_id, is_re_entry)"


def _legacy_file(path: Path, trades: list[tuple[object, ...]]) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(LEGACY_SCHEMA)
    with conn:
        conn.executemany(f"INSERT INTO trades {TRADES} VALUES (?, 'EURUSD', 'closed', 1.0, ?, ?, ?, ?, ?)", trades)
    conn.close()


def _set_columns(project: Project, columns: list[str] | None) -> None:
    path = project.configs / "store.yaml"
    doc = yaml.safe_load(path.read_text())
    if columns is None:
        doc.pop("mapping_columns", None)  # the default order: logic_type, then strategy
    else:
        doc["mapping_columns"] = columns
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def _owners_after(project: Project, command: str) -> dict[str, str]:
    """trade_id -> owner: plugin_id in the shared file after migrate, the isolated file holding it after split."""
    done = run_cli(command, "-q", config=project)
    assert done.returncode == 0, done.stderr
    if command == "migrate":
        return {str(t): str(p) for t, p in query(project.shared_db, "SELECT trade_id, plugin_id FROM trades")}
    owners = {}
    for plugin in (A, B):
        for (trade_id,) in query(project.isolated_db(plugin), "SELECT trade_id FROM trades WHERE plugin_id = ?",
                                 (plugin,)):
            assert str(trade_id) not in owners, f"{trade_id} copied to two plugins"
            owners[str(trade_id)] = plugin
    everyone = {str(t) for (t,) in query(project.shared_db, "SELECT trade_id FROM trades")}
    return {**{t: LEGACY for t in everyone - owners.keys()}, **owners}


@pytest.mark.parametrize("command", ["migrate", "split"])
@pytest.mark.parametrize(("columns", "owner"), [(None, A), (["logic_type", "strategy"], A),
                                                (["strategy", "logic_type"], B)], ids=["default", "logic-first",
                                                                                        "strategy-first"])
def test_the_first_mapping_column_with_a_mapped_value_decides(project: Project, command: str,
                                                              columns: list[str] | None, owner: str) -> None:
    _legacy_file(project.shared_db, [("T1", "LOGIC_A", "STRAT_B", None, None, 0),
                                     ("T2", None, "STRAT_B", None, None, 0),     # only strategy mapped: B always
                                     ("T3", "LOGIC_A", "unmapped", None, None, 0)])  # only logic_type: A always
    set_mapping(project, {"LOGIC_A": A, "STRAT_B": B})
    _set_columns(project, columns)
    assert _owners_after(project, command) == {"T1": owner, "T2": B, "T3": A}


@pytest.mark.parametrize("command", ["migrate", "split"])
def test_an_empty_chain_or_session_id_links_nothing(project: Project, command: str) -> None:
    _legacy_file(project.shared_db, [
        ("P1", None, "LOGIC_A", "", "", 0),                   # a primary with empty links
        ("R1", None, "SL_HUNT_RECOVERY", "", None, 1),        # a re-entry whose chain_id is '' too
        ("R2", None, "AUTO", None, "", 1),                    # a session_id of '' too
        ("P2", None, "LOGIC_A", "C1", "S1", 0),               # real links still carry the owner
        ("R3", None, "SL_HUNT_RECOVERY", "C1", None, 1),
        ("R4", None, "AUTO", None, "S1", 1),
    ])
    set_mapping(project, {"LOGIC_A": A})
    assert _owners_after(project, command) == {"P1": A, "R1": LEGACY, "R2": LEGACY, "P2": A, "R3": A, "R4": A}
