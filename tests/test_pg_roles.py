"""Isolation the server enforces (SPEC 9): raw SQL connected as a plugin's own role, on a real server.

Every assertion is made as the plugin would try it, with plain SQL and no store code in between: a plugin that
bypasses the store still sees, counts, changes and inserts its own rows only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg import errors
from psycopg.conninfo import make_conninfo

from zepix_store.backend.postgresql.names import Layout
from zepix_store.backend.postgresql.roles import POLICY, PluginRole, setup_isolation
from zepix_store.errors import ConfigError
from zepix_store.schema import TABLES

LONG_ID = "l" + "o" * 62 + "g"  # 64 characters: the longest id SPEC 3 allows, one byte over a role name
FILES = {"alpha": None, "beta": None, "g1": "zepix_v3_logic_combined.db", "g2": "zepix_v3_logic_combined.db",
         "solo": "zepix_solo.db", LONG_ID: None}
LAYOUT = Layout("zx_", "trading_bot.db", FILES)
ROWS = {"alpha": 60, "beta": 3000, "g1": 5, "g2": 7, "solo": 4, LONG_ID: 2}
Conn = psycopg.Connection[tuple[object, ...]]


@pytest.fixture(scope="module")
def admin(pg_dsn: str) -> Iterator[Conn]:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="module")
def roles(admin: Conn) -> dict[str, PluginRole]:
    """pg-setup once, then each plugin's rows written by the admin (who bypasses row-level security)."""
    made = {r.plugin_id: r for r in setup_isolation(admin, LAYOUT)}
    for plugin, count in ROWS.items():
        schema = "zx_solo" if plugin == "solo" else "zx_v3_logic_combined" if plugin in ("g1", "g2") else "zx_shared"
        admin.execute(f"INSERT INTO {schema}.trades (plugin_id, trade_id, status, pnl) SELECT %s, 't' || i, "
                      "CASE WHEN i %% 10 = 0 THEN 'open' ELSE 'closed' END, i FROM generate_series(1, %s) i",
                      [plugin, count])
        admin.execute(f"INSERT INTO {schema}.system_state (plugin_id, key, value) VALUES (%s, 'risk', 'on')", [plugin])
    admin.execute("ANALYZE")
    return made


@pytest.fixture
def connect_as(pg_dsn: str, roles: dict[str, PluginRole]) -> Iterator[Callable[[str], Conn]]:
    """Connect as a plugin's own login role (trust auth on the socket: no password in the test cluster)."""
    opened: list[Conn] = []

    def connect(plugin: str) -> Conn:
        opened.append(psycopg.connect(make_conninfo(pg_dsn, user=roles[plugin].role), autocommit=True))
        return opened[-1]

    yield connect
    for conn in opened:
        conn.close()


def _one(conn: Conn, query: str, *params: object) -> object:
    row = conn.execute(query, params or None).fetchone()  # type: ignore[arg-type]
    assert row is not None
    return row[0]


def test_a_plugin_counts_and_reads_only_its_own_rows(connect_as: Callable[[str], Conn]) -> None:
    alpha = connect_as("alpha")
    assert _one(alpha, "SELECT count(*) FROM zx_shared.trades") == ROWS["alpha"]
    assert _one(alpha, "SELECT count(*) FROM zx_shared.trades WHERE plugin_id = 'beta'") == 0
    assert _one(alpha, "SELECT sum(pnl) FROM zx_shared.trades WHERE plugin_id <> 'alpha'") is None
    assert alpha.execute("SELECT plugin_id, key FROM zx_shared.system_state").fetchall() == [("alpha", "risk")]


def test_a_plugin_cannot_change_or_delete_another_plugins_rows(admin: Conn, connect_as: Callable[[str], Conn]) -> None:
    alpha = connect_as("alpha")
    assert alpha.execute("UPDATE zx_shared.trades SET pnl = 0 WHERE plugin_id = 'beta'").rowcount == 0
    assert alpha.execute("DELETE FROM zx_shared.trades WHERE plugin_id = 'beta'").rowcount == 0
    assert alpha.execute("UPDATE zx_shared.system_state SET value = 'off' WHERE key = 'risk'").rowcount == 1
    assert admin.execute("SELECT plugin_id, value FROM zx_shared.system_state ORDER BY 1").fetchall() == [
        ("alpha", "off"), ("beta", "on"), (LONG_ID, "on")]
    assert _one(admin, "SELECT count(*) FROM zx_shared.trades WHERE plugin_id = 'beta' AND pnl > 0") == ROWS["beta"]


@pytest.mark.parametrize("statement", [
    "INSERT INTO zx_shared.trades (plugin_id, trade_id) VALUES ('beta', 'x')",
    "INSERT INTO zx_shared.trades (trade_id) VALUES ('x')",  # the column default: 'legacy'
    "UPDATE zx_shared.trades SET plugin_id = 'beta' WHERE trade_id = 't1'",
], ids=["naming-another", "default-legacy", "moving-own-row"])
def test_a_plugin_cannot_write_a_row_of_another_plugin(admin: Conn, connect_as: Callable[[str], Conn],
                                                       statement: str) -> None:
    alpha = connect_as("alpha")
    with pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
        alpha.execute(statement)
    assert _one(admin, "SELECT count(*) FROM zx_shared.trades WHERE plugin_id <> ALL(%s)", list(ROWS)) == 0


def test_a_plugin_cannot_become_another(roles: dict[str, PluginRole], connect_as: Callable[[str], Conn]) -> None:
    alpha = connect_as("alpha")
    with pytest.raises(errors.InsufficientPrivilege, match="permission denied to set role"):
        alpha.execute(f'SET ROLE "{roles["beta"].role}"')
    with pytest.raises(errors.InsufficientPrivilege):
        alpha.execute(f'SET SESSION AUTHORIZATION "{roles["beta"].role}"')


def test_row_security_off_makes_a_read_fail_not_see_more(connect_as: Callable[[str], Conn]) -> None:
    alpha = connect_as("alpha")
    alpha.execute("SET row_security = off")
    with pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
        alpha.execute("SELECT count(*) FROM zx_shared.trades")


def test_a_plugin_cannot_turn_the_policy_off(connect_as: Callable[[str], Conn]) -> None:
    alpha = connect_as("alpha")
    for statement in ("ALTER TABLE zx_shared.trades DISABLE ROW LEVEL SECURITY",
                      f"DROP POLICY {POLICY} ON zx_shared.trades",
                      "CREATE POLICY mine ON zx_shared.trades USING (true)",
                      "INSERT INTO zx_shared.zx_plugin_roles VALUES (current_user, 'beta')"):
        with pytest.raises(errors.InsufficientPrivilege):
            alpha.execute(statement)


def test_a_plugin_sees_only_its_own_mapping_and_not_the_registry(roles: dict[str, PluginRole],
                                                                  connect_as: Callable[[str], Conn]) -> None:
    alpha = connect_as("alpha")
    assert alpha.execute("SELECT role_name::text, plugin_id FROM zx_shared.zx_plugin_roles").fetchall() == [
        (roles["alpha"].role, "alpha")]
    with pytest.raises(errors.InsufficientPrivilege):
        alpha.execute("SELECT * FROM zx_shared.zx_registry")


def test_another_plugins_isolated_schema_is_closed(connect_as: Callable[[str], Conn]) -> None:
    for plugin in ("alpha", "g1"):
        conn = connect_as(plugin)
        with pytest.raises(errors.InsufficientPrivilege, match="permission denied for schema zx_solo"):
            conn.execute("SELECT count(*) FROM zx_solo.trades")
    assert _one(connect_as("solo"), "SELECT count(*) FROM zx_solo.trades") == ROWS["solo"]


def test_plugins_sharing_an_isolated_file_share_its_schema_but_not_their_rows(
        connect_as: Callable[[str], Conn]) -> None:
    g1 = connect_as("g1")
    assert _one(g1, "SELECT count(*) FROM zx_v3_logic_combined.trades") == ROWS["g1"]
    assert g1.execute("DELETE FROM zx_v3_logic_combined.trades WHERE plugin_id = 'g2'").rowcount == 0
    assert _one(connect_as("g2"), "SELECT count(*) FROM zx_v3_logic_combined.trades") == ROWS["g2"]


def test_a_64_character_plugin_id_gets_a_working_role(roles: dict[str, PluginRole],
                                                      connect_as: Callable[[str], Conn]) -> None:
    role = roles[LONG_ID].role
    assert len(role.encode()) <= 63 and role != roles["alpha"].role
    conn = connect_as(LONG_ID)
    conn.execute("INSERT INTO zx_shared.trades (plugin_id, trade_id) VALUES (%s, 'new')", [LONG_ID])
    assert _one(conn, "SELECT count(*) FROM zx_shared.trades") == ROWS[LONG_ID] + 1
    conn.execute("DELETE FROM zx_shared.trades WHERE trade_id = 'new'")


def test_stats_through_the_policy_use_the_plugin_id_index(connect_as: Callable[[str], Conn]) -> None:
    alpha = connect_as("alpha")
    plan = "\n".join(str(r[0]) for r in alpha.execute(
        "EXPLAIN SELECT count(*), sum(pnl) FROM zx_shared.trades WHERE status = 'closed'"))
    index_conditions = [line for line in plan.splitlines() if "Index Cond:" in line and "plugin_id = $0" in line]
    assert "Seq Scan on trades" not in plan and index_conditions, plan


def test_setup_again_changes_nothing_and_keeps_the_names(admin: Conn, roles: dict[str, PluginRole],
                                                         connect_as: Callable[[str], Conn]) -> None:
    again = {r.plugin_id: r for r in setup_isolation(admin, LAYOUT)}
    assert again == roles
    policies = admin.execute("SELECT schemaname, tablename, count(*) FROM pg_policies WHERE schemaname LIKE 'zx%' "
                             "GROUP BY 1, 2").fetchall()
    assert sorted(n for _, _, n in policies) == [1] * (3 * len(TABLES) + 1)
    assert _one(connect_as("alpha"), "SELECT count(*) FROM zx_shared.trades") == ROWS["alpha"]


def test_no_plugin_role_owns_a_table_or_holds_a_dangerous_attribute(admin: Conn,
                                                                    roles: dict[str, PluginRole]) -> None:
    names = [r.role for r in roles.values()]
    owners = admin.execute("SELECT DISTINCT tableowner::text FROM pg_tables WHERE schemaname LIKE 'zx%'").fetchall()
    assert owners == [("zx_owner",)]
    risky = admin.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s) AND (rolsuper OR rolbypassrls OR "
                          "rolcreaterole OR rolcreatedb OR NOT rolcanlogin)", [names]).fetchall()
    member_of = admin.execute("SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member "
                              "WHERE r.rolname = ANY(%s)", [names]).fetchall()
    assert (risky, member_of) == ([], [])


def test_setup_takes_back_a_membership_granted_to_a_plugin_role(admin: Conn, roles: dict[str, PluginRole],
                                                                connect_as: Callable[[str], Conn]) -> None:
    admin.execute(f'GRANT "{roles["beta"].role}" TO "{roles["alpha"].role}"')  # tampered with by hand
    setup_isolation(admin, LAYOUT)
    with pytest.raises(errors.InsufficientPrivilege, match="permission denied to set role"):
        connect_as("alpha").execute(f'SET ROLE "{roles["beta"].role}"')


def test_a_role_name_taken_by_another_store_is_refused(admin: Conn) -> None:
    admin.execute('CREATE ROLE "zy_p_alpha" LOGIN')
    try:
        with pytest.raises(ConfigError, match="role zy_p_alpha already exists .* schema_prefix"):
            setup_isolation(admin, Layout("zy_", "trading_bot.db", {"alpha": None}))
        assert _one(admin, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'zy%'") == 0  # nothing half-made
    finally:
        admin.execute('DROP ROLE "zy_p_alpha"')


def test_a_plugin_no_longer_configured_can_no_longer_log_in(pg_dsn: str, admin: Conn,
                                                            roles: dict[str, PluginRole]) -> None:
    setup_isolation(admin, Layout("zx_", "trading_bot.db", {k: v for k, v in FILES.items() if k != "beta"}))
    try:
        with pytest.raises(psycopg.OperationalError, match="not permitted to log in"):
            psycopg.connect(make_conninfo(pg_dsn, user=roles["beta"].role)).close()
    finally:
        setup_isolation(admin, LAYOUT)
    psycopg.connect(make_conninfo(pg_dsn, user=roles["beta"].role)).close()
