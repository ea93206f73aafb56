"""Tests for zepix_store.config: the shipped configs, and every malformed or hostile input rejected cleanly."""

from __future__ import annotations

import datetime
import json
import os
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zepix_store.config import PLUGIN_ID_PATTERN, PluginConfig, StoreConfig, load_config, validate_plugin_id
from zepix_store.errors import ConfigError, UnknownPluginError

SHIPPED = Path(__file__).resolve().parents[1] / "configs"
TARGET = "v6-logic-01-1min"
COMBINED_DB = "zepix_v3_logic_combined.db"
SHIPPED_IDS = [
    "v3-logic-01-5min",
    "v3-logic-02-15min",
    "v3-logic-03-1h",
    "v3-logic-combined",
    "v6-logic-01-1min",
    "v6-logic-02-5min",
    "v6-logic-03-15min",
    "v6-logic-04-1h",
]
DELETE = object()
Mutation = Callable[[Path], object]


# --- helpers ------------------------------------------------------------------------------------------------------


def make_project(tmp_path: Path) -> Path:
    """Copy the shipped configs into tmp_path/proj/configs with an empty data/ beside them; return the configs dir."""
    configs = tmp_path / "proj" / "configs"
    shutil.copytree(SHIPPED, configs)
    (tmp_path / "proj" / "data").mkdir()
    return configs


def listing(top: Path) -> list[tuple[str, str]]:
    """List every entry under top (symlinks not followed) with its kind, for before/after comparisons."""
    entries = []
    for folder, dirs, files in os.walk(top, followlinks=False):
        for name in dirs + files:
            path = Path(folder) / name
            kind = "link" if path.is_symlink() else "dir" if path.is_dir() else "file"
            entries.append((str(path.relative_to(top)), kind))
    return sorted(entries)


def expect_error(configs: Path, *parts: str) -> str:
    """Load configs, expect a one-line ConfigError holding every part, and check nothing was created."""
    top = configs.parents[1]
    before = listing(top)
    with pytest.raises(ConfigError) as info:
        load_config(configs)
    message = str(info.value)
    assert "\n" not in message
    for part in parts:
        assert part in message
    assert listing(top) == before
    return message


def plugin_file(configs: Path, plugin_id: str = TARGET) -> Path:
    return configs / "plugins" / plugin_id / "config.json"


def write_plugin(configs: Path, content: str | bytes, plugin_id: str = TARGET) -> None:
    data = content.encode() if isinstance(content, str) else content
    plugin_file(configs, plugin_id).write_bytes(data)


def edit_plugin(configs: Path, folder: str = TARGET, /, **fields: object) -> None:
    """Set (or with DELETE remove) top-level keys of a plugin config."""
    doc = json.loads(plugin_file(configs, folder).read_text())
    for key, value in fields.items():
        doc.pop(key) if value is DELETE else doc.__setitem__(key, value)
    write_plugin(configs, json.dumps(doc), folder)


def edit_database(configs: Path, folder: str = TARGET, /, **fields: object) -> None:
    """Set (or with DELETE remove) keys of a plugin config's database block."""
    doc = json.loads(plugin_file(configs, folder).read_text())
    for key, value in fields.items():
        doc["database"].pop(key) if value is DELETE else doc["database"].__setitem__(key, value)
    write_plugin(configs, json.dumps(doc), folder)


def replace_in_plugin(configs: Path, old: str, new: str) -> None:
    text = plugin_file(configs).read_text()
    assert old in text
    write_plugin(configs, text.replace(old, new, 1))


def replace_in_store(configs: Path, old: str, new: str) -> None:
    path = configs / "store.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def drop_store_key(configs: Path, key: str) -> None:
    path = configs / "store.yaml"
    lines = path.read_text().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{key}:"))
    end = start + 1
    while end < len(lines) and lines[end].startswith(" "):
        end += 1
    path.write_text("".join(lines[:start] + lines[end:]))


# --- the shipped configs ------------------------------------------------------------------------------------------


def test_shipped_configs_load(tmp_path: Path) -> None:
    configs = make_project(tmp_path)
    root = configs.parent
    config = load_config(configs)
    assert isinstance(config, StoreConfig)
    assert list(config.plugins) == SHIPPED_IDS
    assert (config.config_dir, config.root) == (configs, root)
    assert config.data_dir == root / "data"
    assert config.shared_db == root / "data" / "trading_bot.db"
    assert config.backup_dir == root / "data" / "backups"
    assert config.plugins_dir == configs / "plugins"
    assert config.default_plugin_id == "legacy"
    assert config.mapping_columns == ("logic_type", "strategy") and config.timezone == "local"
    assert config.mapping == {
        "combinedlogic-1": "v3-logic-01-5min",
        "combinedlogic-2": "v3-logic-02-15min",
        "combinedlogic-3": "v3-logic-03-1h",
        "LOGIC1": "v3-logic-01-5min",
        "LOGIC2": "v3-logic-02-15min",
        "LOGIC3": "v3-logic-03-1h",
    }


def test_shipped_plugins_route_to_their_isolated_files(tmp_path: Path) -> None:
    configs = make_project(tmp_path)
    data = configs.parent / "data"
    config = load_config(configs)
    for plugin_id, plugin in config.plugins.items():
        assert plugin.plugin_id == plugin_id
        assert plugin.use_shared is False
        assert plugin.shared_db == data / "trading_bot.db"
        assert plugin.db_path == plugin.isolated_db
        assert plugin.config_path == plugin_file(configs, plugin_id)
    files = Counter(plugin.db_path.name for plugin in config.plugins.values())
    assert files == {
        COMBINED_DB: 4,
        "zepix_v6_logic_01_1min.db": 1,
        "zepix_v6_logic_02_5min.db": 1,
        "zepix_v6_logic_03_15min.db": 1,
        "zepix_v6_logic_04_1h.db": 1,
    }


def test_configs_in_the_checkout_load() -> None:
    config = load_config(SHIPPED)
    assert config.root == SHIPPED.parent
    assert list(config.plugins) == SHIPPED_IDS


def test_relative_paths_resolve_against_config_parent_not_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configs = make_project(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert load_config(configs).shared_db == configs.parent / "data" / "trading_bot.db"
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("proj") / "configs")
    assert config.root == configs.parent
    assert config.plugin(TARGET).db_path == configs.parent / "data" / "zepix_v6_logic_01_1min.db"


def test_plugin_lookup_and_unknown_id(tmp_path: Path) -> None:
    config = load_config(make_project(tmp_path))
    assert config.plugin(TARGET) is config.plugins[TARGET]
    with pytest.raises(UnknownPluginError) as info:
        config.plugin("v9-nope")
    assert "'v9-nope'" in str(info.value)
    assert str(config.plugins_dir) in str(info.value)
    assert isinstance(info.value, ConfigError)


def test_use_shared_true_routes_to_shared_db_and_keeps_isolated_path(tmp_path: Path) -> None:
    configs = make_project(tmp_path)
    edit_database(configs, use_shared=True)
    edit_database(configs, "v6-logic-02-5min", use_shared=True, isolated_db=DELETE)
    config = load_config(configs)
    flipped, bare = config.plugin(TARGET), config.plugin("v6-logic-02-5min")
    assert flipped.db_path == config.shared_db
    assert flipped.isolated_db == config.data_dir / "zepix_v6_logic_01_1min.db"
    assert (bare.db_path, bare.isolated_db) == (config.shared_db, None)


def test_plugin_owned_keys_are_ignored(tmp_path: Path) -> None:
    configs = make_project(tmp_path)
    edit_plugin(configs, risk={"max_lots": 0.5, "pairs": ["EURUSD"]}, enabled=None, notes="")
    assert load_config(configs).plugin(TARGET).use_shared is False


def test_absolute_path_inside_data_dir_and_inside_symlink_are_accepted(tmp_path: Path) -> None:
    configs = make_project(tmp_path)
    data = configs.parent / "data"
    edit_database(configs, isolated_db=str(data / "abs.db"))
    (data / "real.db").touch()
    (data / "alias.db").symlink_to("real.db")
    edit_database(configs, "v6-logic-02-5min", isolated_db="data/alias.db")
    config = load_config(configs)
    assert config.plugin(TARGET).isolated_db == data / "abs.db"
    assert config.plugin("v6-logic-02-5min").isolated_db == data / "real.db"


def test_store_yaml_with_bom_loads(tmp_path: Path) -> None:
    configs = make_project(tmp_path)
    path = configs / "store.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert load_config(configs).default_plugin_id == "legacy"


def test_stray_files_and_hidden_folders_in_plugins_dir_are_skipped(tmp_path: Path) -> None:
    configs = make_project(tmp_path)
    (configs / "plugins" / "README.md").write_text("plugins live here\n")
    (configs / "plugins" / ".cache").mkdir()
    assert list(load_config(configs).plugins) == SHIPPED_IDS


def test_loading_creates_nothing(tmp_path: Path) -> None:
    configs = make_project(tmp_path)
    shutil.rmtree(configs.parent / "data")
    edit_database(configs, isolated_db="data/new/sub/dir/p.db")
    before = listing(tmp_path)
    assert load_config(configs).plugin(TARGET).db_path == configs.parent / "data" / "new" / "sub" / "dir" / "p.db"
    assert listing(tmp_path) == before
    edit_database(configs, isolated_db="../outside/p.db")
    expect_error(configs, "escapes data dir")


# --- malformed config.json ----------------------------------------------------------------------------------------

JSON_CASES = [
    pytest.param(
        lambda c: write_plugin(c, plugin_file(c).read_text()[:100]), ["line", "malformed JSON"], id="truncated"
    ),
    pytest.param(lambda c: replace_in_plugin(c, '"database"', '"database'), ["line", "malformed JSON"], id="bad-quote"),
    pytest.param(lambda c: write_plugin(c, b"\xef\xbb\xbf" + plugin_file(c).read_bytes()), ["file:", "BOM"], id="bom"),
    pytest.param(lambda c: replace_in_plugin(c, '"1m",', '"1m",,'), ["malformed JSON"], id="double-comma"),
    pytest.param(
        lambda c: write_plugin(c, plugin_file(c).read_text().rstrip()[:-1] + ",}"),
        ["malformed JSON"],
        id="trailing-comma",
    ),
    pytest.param(
        lambda c: replace_in_plugin(c, '"name"', f'"plugin_id": "{TARGET}", "name"'),
        ["plugin_id: duplicate key"],
        id="duplicate-top-key",
    ),
    pytest.param(
        lambda c: replace_in_plugin(c, '"use_shared": false', '"use_shared": true, "use_shared": false'),
        ["database.use_shared: duplicate key"],
        id="duplicate-database-key",
    ),
    pytest.param(
        lambda c: replace_in_plugin(c, '"enabled": true', '"enabled": {"a": 1, "a": 2}'),
        ["enabled.a: duplicate key"],
        id="duplicate-plugin-owned-key",
    ),
    pytest.param(lambda c: replace_in_plugin(c, '"enabled": true', '"risk": NaN'), ["risk: NaN", "finite"], id="nan"),
    pytest.param(
        lambda c: replace_in_plugin(c, '"enabled": true', '"risk": [1, -Infinity]'),
        ["risk[1]: -Infinity"],
        id="infinity",
    ),
    pytest.param(lambda c: replace_in_plugin(c, '"enabled": true', '"risk": 1e400'), ["risk: 1e400"], id="overflow"),
    pytest.param(
        lambda c: replace_in_plugin(c, '"enabled": true', '"risk": ' + "9" * 5000), ["malformed JSON"], id="huge-int"
    ),
    pytest.param(lambda c: write_plugin(c, "[" * 100_000 + "]" * 100_000), ["nested too deeply"], id="deep"),
    pytest.param(lambda c: write_plugin(c, ""), ["file: is empty"], id="empty"),
    pytest.param(lambda c: write_plugin(c, " \n\t\n"), ["file: is empty"], id="blank"),
    pytest.param(lambda c: write_plugin(c, "[]"), ["top level: must be a JSON object"], id="array"),
    pytest.param(lambda c: write_plugin(c, '"text"'), ["top level: must be a JSON object"], id="string"),
    pytest.param(lambda c: write_plugin(c, b'{"plugin_id": "\xff"}'), ["not valid UTF-8"], id="bad-utf8"),
    pytest.param(
        lambda c: write_plugin(c, plugin_file(c).read_text().encode("utf-16")), ["not valid UTF-8"], id="utf16"
    ),
    pytest.param(lambda c: write_plugin(c, " " * (10 << 20) + "{}"), ["file:", "byte limit", "not parsed"], id="10mb"),
    pytest.param(lambda c: write_plugin(c, "{}" + " " * (1 << 20)), ["byte limit"], id="1mib-plus-2"),
    pytest.param(lambda c: edit_plugin(c, plugin_id=DELETE), ["plugin_id: missing"], id="no-plugin-id"),
    pytest.param(lambda c: edit_plugin(c, plugin_id=7), ["plugin_id: must be a string, got int 7"], id="int-id"),
    pytest.param(
        lambda c: edit_plugin(c, plugin_id="v6-logic-02-5min"),
        ["plugin_id:", "also claimed"],
        id="id-of-another-folder",
    ),
    pytest.param(
        lambda c: edit_plugin(c, plugin_id="v6-other"),
        ["plugin_id:", "differs from its folder name"],
        id="id-not-folder",
    ),
    pytest.param(lambda c: edit_plugin(c, plugin_id="V6-Logic"), ["plugin_id:", "not a valid plugin id"], id="bad-id"),
    pytest.param(lambda c: edit_plugin(c, database=DELETE), ["database: missing"], id="no-database"),
    pytest.param(lambda c: edit_plugin(c, database=[]), ["database: must be an object, got list"], id="db-list"),
    pytest.param(lambda c: edit_plugin(c, database=None), ["database: must be an object, got nothing"], id="db-null"),
    pytest.param(lambda c: edit_database(c, colour="red"), ["database.colour: unknown key"], id="unknown-db-key"),
    pytest.param(lambda c: edit_database(c, path="data/x.db"), ["database.path: names the isolated file"],
                 id="path-with-isolated_db"),
    pytest.param(
        lambda c: edit_database(c, use_shared="false"),
        ["database.use_shared", "JSON boolean", "str 'false'"],
        id="use-shared-string",
    ),
    pytest.param(lambda c: edit_database(c, use_shared=0), ["database.use_shared", "int 0"], id="use-shared-0"),
    pytest.param(lambda c: edit_database(c, use_shared=1), ["database.use_shared", "int 1"], id="use-shared-1"),
    pytest.param(lambda c: edit_database(c, use_shared=None), ["database.use_shared", "null"], id="use-shared-null"),
    pytest.param(
        lambda c: edit_database(c, use_shared=DELETE), ["database.use_shared", "missing"], id="use-shared-missing"
    ),
    pytest.param(
        lambda c: edit_database(c, shared_db="data/other.db"),
        ["database.shared_db", "differs from"],
        id="shared-db-differs",
    ),
    pytest.param(
        lambda c: edit_database(c, shared_db=DELETE), ["database.shared_db: must be a string"], id="shared-db-missing"
    ),
    pytest.param(
        lambda c: edit_database(c, shared_db="../x.db"),
        ["database.shared_db", "escapes data dir"],
        id="shared-db-outside",
    ),
    pytest.param(
        lambda c: edit_database(c, isolated_db=DELETE),
        ["database.isolated_db: required when use_shared"],
        id="isolated-missing",
    ),
    pytest.param(
        lambda c: edit_database(c, isolated_db=None),
        ["database.isolated_db: required when use_shared"],
        id="isolated-null",
    ),
    pytest.param(
        lambda c: edit_database(c, isolated_db=5),
        ["database.isolated_db: must be a string, got int 5"],
        id="isolated-int",
    ),
    pytest.param(
        lambda c: edit_database(c, isolated_db="data/trading_bot.db"),
        ["database.isolated_db", "is the shared database"],
        id="isolated-is-shared",
    ),
    pytest.param(
        lambda c: edit_database(c, isolated_db="data/./trading_bot.db"),
        ["database.isolated_db", "is the shared database"],
        id="isolated-is-shared-spelt-otherwise",
    ),
    pytest.param(
        lambda c: edit_database(c, isolated_db="data/backups"),
        ["database.isolated_db", "is a folder"],
        id="isolated-is-folder",
    ),
]


@pytest.mark.parametrize(("breakage", "parts"), JSON_CASES)
def test_malformed_plugin_config_is_rejected(tmp_path: Path, breakage: Mutation, parts: list[str]) -> None:
    configs = make_project(tmp_path)
    (configs.parent / "data" / "backups").mkdir()
    breakage(configs)
    expect_error(configs, f"{TARGET}/config.json: ", *parts)


def test_config_json_that_is_a_folder_is_rejected(tmp_path: Path) -> None:
    configs = make_project(tmp_path)
    plugin_file(configs).unlink()
    plugin_file(configs).mkdir()
    expect_error(configs, f"{TARGET}/config.json: file: is not a regular file")


def test_plugin_folder_without_config_is_skipped(tmp_path: Path) -> None:
    configs = make_project(tmp_path)
    (configs / "plugins" / "v7-new").mkdir()
    assert "v7-new" not in load_config(configs).plugins


def test_plugin_folder_with_invalid_name_is_rejected(tmp_path: Path) -> None:
    configs = make_project(tmp_path)
    shutil.copytree(configs / "plugins" / TARGET, configs / "plugins" / "V6-Logic")
    expect_error(configs, "V6-Logic: folder name:", "'V6-Logic' is not a valid plugin id")


def test_two_configs_with_one_id_name_both_files(tmp_path: Path) -> None:
    configs = make_project(tmp_path)
    shutil.copytree(configs / "plugins" / TARGET, configs / "plugins" / "v6-logic-01-1min-copy")
    message = expect_error(configs, "also claimed")
    assert str(plugin_file(configs)) in message
    assert str(plugin_file(configs, "v6-logic-01-1min-copy")) in message


def test_plugin_named_as_default_id_is_rejected(tmp_path: Path) -> None:
    configs = make_project(tmp_path)
    shutil.copytree(configs / "plugins" / TARGET, configs / "plugins" / "legacy")
    edit_plugin(configs, "legacy", plugin_id="legacy")
    expect_error(configs, "legacy/config.json: plugin_id:", "reserved", "default_plugin_id")


# --- malformed store.yaml -----------------------------------------------------------------------------------------

STORE_WITH_NULL_MAPPING = """\
data_dir: data
shared_db: data/trading_bot.db
backup_dir: data/backups
plugins_dir: configs/plugins
default_plugin_id: legacy
mapping:
"""

YAML_CASES = [
    pytest.param(lambda c: replace_in_store(c, "mapping:", "mapping: [\n"), ["malformed YAML", "line"], id="syntax"),
    pytest.param(
        lambda c: replace_in_store(c, "shared_db:", "data_dir: data\nshared_db:"),
        ["data_dir: duplicate key (line 2)"],
        id="duplicate-top-key",
    ),
    pytest.param(
        lambda c: replace_in_store(c, "  LOGIC2:", "  LOGIC1: v3-logic-03-1h\n  LOGIC2:"),
        ["mapping.LOGIC1: duplicate key"],
        id="duplicate-mapping-key",
    ),
    pytest.param(
        lambda c: (c / "store.yaml").write_text("- data_dir\n- data\n"), ["top level: must be a mapping"], id="list"
    ),
    pytest.param(lambda c: (c / "store.yaml").write_text(""), ["store.yaml: file: is empty"], id="empty"),
    pytest.param(
        lambda c: (c / "store.yaml").write_text("# nothing\n"),
        ["top level: must be a mapping, got nothing"],
        id="comment-only",
    ),
    pytest.param(
        lambda c: (c / "store.yaml").write_text("a: 1\n---\nb: 2\n"),
        ["malformed YAML", "single document"],
        id="two-documents",
    ),
    pytest.param(lambda c: (c / "store.yaml").unlink(), ["store.yaml: file: not found"], id="missing-file"),
    pytest.param(
        lambda c: replace_in_store(c, "mapping:", "colour: blue\nmapping:"), ["colour: unknown key"], id="unknown-key"
    ),
    pytest.param(
        lambda c: replace_in_store(c, "default_plugin_id: legacy", "default_plugin_id: no"),
        ["default_plugin_id: value must be a string, got bool False", "quote it"],
        id="no-is-false",
    ),
    pytest.param(
        lambda c: replace_in_store(c, "default_plugin_id: legacy", "default_plugin_id: off"),
        ["default_plugin_id:", "bool False"],
        id="off-is-false",
    ),
    pytest.param(
        lambda c: replace_in_store(c, "data_dir: data", "data_dir: 0755"), ["data_dir:", "int 493"], id="octal"
    ),
    pytest.param(
        lambda c: replace_in_store(c, "data_dir: data", "data_dir: 2024-01-01"), ["data_dir:", "date"], id="date"
    ),
    pytest.param(lambda c: replace_in_store(c, "data_dir: data", "data_dir: ~"), ["data_dir:", "null"], id="null"),
    pytest.param(
        lambda c: replace_in_store(c, "data_dir: data", "data_dir: !!python/object:os.getcwd {}"),
        ["malformed YAML", "python/object"],
        id="python-object-tag",
    ),
    pytest.param(
        lambda c: replace_in_store(c, "data_dir: data", "data_dir: !!python/object/apply:os.getcwd []"),
        ["malformed YAML", "python/object/apply"],
        id="python-apply-tag",
    ),
    pytest.param(
        lambda c: replace_in_store(c, "backup_dir: data/backups", "backup_dir: [data]"),
        ["backup_dir: value must be a string, got list"],
        id="list-value",
    ),
    pytest.param(
        lambda c: replace_in_store(c, "default_plugin_id: legacy", "default_plugin_id: Legacy"),
        ["default_plugin_id: 'Legacy' is not a valid plugin id"],
        id="bad-default-id",
    ),
    pytest.param(
        lambda c: replace_in_store(c, "mapping:", "mapping: {}\nold_mapping:"),
        ["old_mapping: unknown key"],
        id="unknown-after-mapping",
    ),
    pytest.param(
        lambda c: (c / "store.yaml").write_text(STORE_WITH_NULL_MAPPING),
        ["mapping: must be a mapping", "nothing"],
        id="mapping-null",
    ),
    pytest.param(
        lambda c: replace_in_store(c, "  LOGIC1:", "  1: v3-logic-01-5min\n  LOGIC1:"),
        ["mapping.1: key must be a string, got int 1"],
        id="int-mapping-key",
    ),
    pytest.param(
        lambda c: replace_in_store(c, "LOGIC1: v3-logic-01-5min", "LOGIC1: no"),
        ["mapping.LOGIC1: value must be a string, got bool False"],
        id="bool-target",
    ),
    pytest.param(
        lambda c: replace_in_store(c, "LOGIC1: v3-logic-01-5min", "LOGIC1: v9-missing"),
        ["mapping.LOGIC1: mapping target 'v9-missing' has no plugin config"],
        id="target-without-config",
    ),
    pytest.param(
        lambda c: replace_in_store(c, "LOGIC1: v3-logic-01-5min", "LOGIC1: ../x"),
        ["mapping.LOGIC1:", "'../x' is not a valid plugin id"],
        id="target-bad-id",
    ),
    pytest.param(
        lambda c: replace_in_store(c, "plugins_dir: configs/plugins", "plugins_dir: configs/nope"),
        ["plugins_dir:", "is not a folder"],
        id="plugins-dir-missing",
    ),
    pytest.param(
        lambda c: replace_in_store(c, "data_dir: data", "data_dir: ''"),
        ["data_dir: the path is empty"],
        id="data-dir-empty",
    ),
    pytest.param(
        lambda c: replace_in_store(c, "data_dir: data", "data_dir: configs/store.yaml"),
        ["data_dir:", "is not a folder"],
        id="data-dir-file",
    ),
    pytest.param(
        lambda c: replace_in_store(c, "data_dir: data", 'data_dir: "da\\0ta"'),
        ["data_dir:", "NUL byte"],
        id="data-dir-nul",
    ),
    pytest.param(
        lambda c: replace_in_store(c, "shared_db: data/trading_bot.db", "shared_db: trading_bot.db"),
        ["store.yaml: shared_db:", "escapes data dir"],
        id="shared-db-outside",
    ),
    pytest.param(
        lambda c: replace_in_store(c, "shared_db: data/trading_bot.db", "shared_db: data"),
        ["store.yaml: shared_db:", "escapes data dir"],
        id="shared-db-is-data-dir",
    ),
    pytest.param(
        lambda c: replace_in_store(c, "backup_dir: data/backups", "backup_dir: /tmp/backups"),
        ["store.yaml: backup_dir:", "escapes data dir"],
        id="backup-dir-outside",
    ),
]


@pytest.mark.parametrize(("breakage", "parts"), YAML_CASES)
def test_malformed_store_yaml_is_rejected(tmp_path: Path, breakage: Mutation, parts: list[str]) -> None:
    configs = make_project(tmp_path)
    breakage(configs)
    expect_error(configs, "store.yaml: ", *parts)


ATTRIBUTION_CASES = [
    pytest.param("mapping_columns: logic_type", ["mapping_columns: must be a list of trades columns", "str"],
                 id="columns-not-a-list"),
    pytest.param("mapping_columns: []", ["mapping_columns: must be a list of trades columns"], id="columns-empty"),
    pytest.param("mapping_columns: [logic_type, logic]", ["mapping_columns[1]: 'logic' is not a column of the trades"],
                 id="columns-unknown"),
    pytest.param("mapping_columns: [plugin_id]", ["mapping_columns[0]: 'plugin_id' is not a column of the trades"],
                 id="columns-plugin-id"),
    pytest.param("mapping_columns: [strategy, strategy]", ["mapping_columns[1]: 'strategy' is listed twice"],
                 id="columns-twice"),
    pytest.param("mapping_columns: [strategy, 3]", ["mapping_columns[1]: value must be a string, got int 3"],
                 id="columns-int"),
    pytest.param("timezone: Mars/Olympus_Mons", ["timezone: unknown time zone 'Mars/Olympus_Mons'"], id="zone-unknown"),
    pytest.param("timezone: ../../etc/passwd", ["timezone: unknown time zone"], id="zone-path"),
    pytest.param("timezone: 5", ["timezone: value must be a string, got int 5"], id="zone-int"),
    pytest.param("timezone:", ["timezone: value must be a string, got nothing"], id="zone-null"),
]


def set_store_key(configs: Path, key: str, line: str) -> None:
    drop_store_key(configs, key)
    replace_in_store(configs, "mapping:", f"{line}\nmapping:")


@pytest.mark.parametrize(("line", "parts"), ATTRIBUTION_CASES)
def test_bad_mapping_columns_or_timezone_is_rejected(tmp_path: Path, line: str, parts: list[str]) -> None:
    configs = make_project(tmp_path)
    set_store_key(configs, line.split(":")[0], line)
    expect_error(configs, "store.yaml: ", *parts)


def test_mapping_columns_and_timezone_default_when_absent(tmp_path: Path) -> None:
    configs = make_project(tmp_path)
    assert "mapping_columns:" in (configs / "store.yaml").read_text()  # the shipped file names both
    drop_store_key(configs, "mapping_columns")
    drop_store_key(configs, "timezone")
    config = load_config(configs)
    assert (config.mapping_columns, config.timezone) == (("logic_type", "strategy"), "local")
    assert config.rules.mapping_columns == ("logic_type", "strategy") and config.rules.mapping == config.mapping
    assert config.rules.default_plugin_id == "legacy"


@pytest.mark.parametrize(("name", "offset_hours"), [("UTC", 0), ("America/Bogota", -5), ("Asia/Kolkata", 5.5)])
def test_timezone_names_a_zone(tmp_path: Path, name: str, offset_hours: float) -> None:
    configs = make_project(tmp_path)
    set_store_key(configs, "timezone", f"timezone: {name}")
    set_store_key(configs, "mapping_columns", "mapping_columns: [strategy]")
    config = load_config(configs)
    assert config.timezone == name and config.mapping_columns == ("strategy",)
    offset = datetime.datetime(2025, 1, 15, tzinfo=config.zone).utcoffset()
    assert offset == datetime.timedelta(hours=offset_hours)


@pytest.mark.parametrize("key", ["data_dir", "shared_db", "backup_dir", "plugins_dir", "default_plugin_id", "mapping"])
def test_store_yaml_missing_key_is_rejected(tmp_path: Path, key: str) -> None:
    configs = make_project(tmp_path)
    drop_store_key(configs, key)
    expect_error(configs, f"store.yaml: {key}: missing")


def test_store_yaml_alias_bomb_is_rejected_quickly(tmp_path: Path) -> None:
    configs = make_project(tmp_path)
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 12)]
    (configs / "store.yaml").write_text("\n".join(lines) + "\n")
    expect_error(configs, "store.yaml: a0: unknown key")


# --- hostile plugin ids -------------------------------------------------------------------------------------------

HOSTILE_IDS = [
    "../x",
    "a/b",
    "",
    " ",
    ".",
    "..",
    "a\x00b",
    "a" * 300,
    "V3-Logic",
    "v3\u2010logic",
    "%",
    "_",
    "' OR 1=1 --",
    "x; DROP TABLE trades",
    "abc\n",
    "\nabc",
    "v3-logic-01-5min\n",
    "\uff563-logic",
    "v3-logic-01-5min/../../etc",
    ".hidden",
    "-flag",
]


@pytest.mark.parametrize("value", HOSTILE_IDS, ids=repr)
def test_hostile_plugin_id_is_rejected(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_plugin_id(value, "where.json: plugin_id")
    assert str(info.value).startswith("where.json: plugin_id: ")
    assert "not a valid plugin id" in str(info.value)
    assert "\n" not in str(info.value) and "\x00" not in str(info.value)


@pytest.mark.parametrize("value", HOSTILE_IDS, ids=repr)
def test_hostile_plugin_id_in_config_is_rejected(tmp_path: Path, value: str) -> None:
    configs = make_project(tmp_path)
    edit_plugin(configs, plugin_id=value)
    expect_error(configs, f"{TARGET}/config.json: plugin_id:", "not a valid plugin id")


@pytest.mark.parametrize("value", HOSTILE_IDS, ids=repr)
def test_hostile_plugin_id_lookup_is_unknown(tmp_path: Path, value: str) -> None:
    config = load_config(make_project(tmp_path))
    with pytest.raises(UnknownPluginError):
        config.plugin(value)


@pytest.mark.parametrize("value", [None, 1, 1.5, True, b"v3", ["v3"], {"v3": 1}], ids=repr)
def test_non_string_plugin_id_is_rejected(value: object) -> None:
    with pytest.raises(ConfigError, match="where: must be a string"):
        validate_plugin_id(value, "where")


@pytest.mark.parametrize("value", ["legacy", "v3-logic-01-5min", "a", "0", "a.b_c-d", "a" * 64, "a..b"])
def test_valid_plugin_ids_are_accepted(value: str) -> None:
    assert validate_plugin_id(value, "where") == value


@settings(max_examples=300)
@given(st.one_of(st.text(), st.text(alphabet="az09._-/\\ \x00\nA\u2010", max_size=70)))
def test_accepted_plugin_ids_are_safe_names(value: str) -> None:
    try:
        accepted = validate_plugin_id(value, "fuzz")
    except ConfigError:
        return
    assert PLUGIN_ID_PATTERN.fullmatch(accepted)
    assert 1 <= len(accepted) <= 64
    assert "/" not in accepted and "\\" not in accepted and "\x00" not in accepted
    assert not accepted.startswith(".") and accepted == accepted.lower() and accepted.isascii()


# --- path traversal through isolated_db ---------------------------------------------------------------------------


def symlinked_db(target: str, *, content: bytes | None) -> Mutation:
    """Return a setup that links data/p.db to tmp/outside/<target>, optionally creating the target first."""

    def setup(configs: Path) -> str:
        outside = configs.parents[1] / "outside"
        outside.mkdir(exist_ok=True)
        if content is not None:
            (outside / target).write_bytes(content)
        (configs.parent / "data" / "p.db").symlink_to(outside / target)
        return "data/p.db"

    return setup


def symlinked_parent(configs: Path) -> str:
    outside = configs.parents[1] / "outside"
    outside.mkdir()
    (configs.parent / "data" / "sub").symlink_to(outside, target_is_directory=True)
    return "data/sub/p.db"


def relative_symlink(configs: Path) -> str:
    (configs.parent / "data" / "p.db").symlink_to("../../x.db")
    return "data/p.db"


def symlink_loop(configs: Path) -> str:
    (configs.parent / "data" / "loop.db").symlink_to("loop.db")
    return "data/loop.db"


TRAVERSALS = [
    pytest.param("../../x.db", id="dotdot"),
    pytest.param("/etc/x.db", id="etc"),
    pytest.param("/tmp/x.db", id="tmp"),
    pytest.param("data/../../x.db", id="data-dotdot"),
    pytest.param("data/sub/../../../x.db", id="deep-dotdot"),
    pytest.param("data/../data/x.db", id="dotdot-back-inside"),
    pytest.param("file:x.db?mode=rwc", id="uri"),
    pytest.param("FILE:data/x.db", id="uri-upper"),
    pytest.param(":memory:", id="memory"),
    pytest.param("", id="empty"),
    pytest.param("data/p\x00.db", id="nul"),
    pytest.param("x.db", id="root-not-data"),
    pytest.param("configs/plugins/x.db", id="configs-folder"),
    pytest.param(symlinked_db("existing.db", content=b"SQLite format 3\x00"), id="symlink-existing"),
    pytest.param(symlinked_db("empty.db", content=b""), id="symlink-empty"),
    pytest.param(symlinked_db("missing.db", content=None), id="symlink-missing"),
    pytest.param(symlinked_parent, id="symlinked-parent"),
    pytest.param(relative_symlink, id="relative-symlink"),
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_isolated_db_outside_data_dir_is_rejected(tmp_path: Path, path: str | Mutation) -> None:
    configs = make_project(tmp_path)
    value = path(configs) if callable(path) else path
    edit_database(configs, isolated_db=value)
    expect_error(configs, f"{TARGET}/config.json: database.isolated_db: ", "escapes data dir")
    assert not (tmp_path / "outside" / "missing.db").exists()
    assert not (tmp_path / "outside" / "p.db").exists()


def test_isolated_db_symlink_loop_is_rejected(tmp_path: Path) -> None:
    configs = make_project(tmp_path)
    edit_database(configs, isolated_db=symlink_loop(configs))
    expect_error(configs, "database.isolated_db: ", "symlink loop")


def test_symlinked_data_dir_is_followed(tmp_path: Path) -> None:
    configs = make_project(tmp_path)
    real_data = tmp_path / "big-disk" / "data"
    real_data.mkdir(parents=True)
    (configs.parent / "data").rmdir()
    (configs.parent / "data").symlink_to(real_data, target_is_directory=True)
    config = load_config(configs)
    assert config.data_dir == real_data
    assert config.plugin(TARGET).db_path == real_data / "zepix_v6_logic_01_1min.db"


def test_plugin_config_requires_isolated_db_when_not_shared(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="isolated_db"):
        PluginConfig("p", False, tmp_path / "s.db", None, tmp_path / "config.json")


# --- the bot's own plugin template, and a running bot's lenient load ------------------------------------------


def test_bot_template_block_means_isolated_at_its_path(tmp_path: Path) -> None:
    configs = make_project(tmp_path)
    write_plugin(configs, json.dumps({"plugin_id": TARGET, "enabled": True,
                                      "database": {"path": "data/zepix_mine.db", "backup_enabled": False}}))
    plugin = load_config(configs).plugin(TARGET)
    assert (plugin.use_shared, plugin.backup_enabled) == (False, False)
    assert plugin.db_path == configs.parent.resolve() / "data" / "zepix_mine.db"
    assert plugin.shared_db == load_config(configs).shared_db


@pytest.mark.parametrize(("block", "parts"), [
    ({"path": "data/a.db", "isolated_db": "data/a.db"}, ["database.path: names the isolated file"]),
    ({"path": "data/a.db", "backup_enabled": "false"}, ["database.backup_enabled: must be true or false"]),
    ({"path": "../a.db"}, ["database.path:", "escapes data dir"]),
    ({"path": 7}, ["database.path: must be a string"]),
], ids=["with-isolated_db", "backup-string", "escape", "not-a-string"])
def test_bad_bot_template_blocks_are_rejected(tmp_path: Path, block: dict[str, object], parts: list[str]) -> None:
    configs = make_project(tmp_path)
    write_plugin(configs, json.dumps({"plugin_id": TARGET, "database": block}))
    expect_error(configs, f"{TARGET}/config.json: ", *parts)


def test_template_and_hidden_folders_are_skipped(tmp_path: Path) -> None:
    configs = make_project(tmp_path)
    for name in ("_template", ".cache"):
        (configs / "plugins" / name).mkdir()
        (configs / "plugins" / name / "config.json").write_text('{"plugin_id": "<id>", "database": {"path": 1}}')
    assert "_template" not in load_config(configs).plugins


def test_one_bad_plugin_config_disables_only_that_plugin_in_store_open(tmp_path: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    from zepix_store import Store

    configs = make_project(tmp_path)
    write_plugin(configs, f'{{"plugin_id": "{TARGET}", "database": {{"use_shared": "false"}}}}')
    expect_error(configs, f"{TARGET}/config.json: database.use_shared: must be true or false")  # commands: strict
    with caplog.at_level("WARNING", logger="zepix_store"):
        store = Store.open(configs)
    assert f"{TARGET}/config.json: database.use_shared" in caplog.text
    with pytest.raises(ConfigError, match=f"{TARGET}/config.json: database.use_shared"):
        store.for_plugin(TARGET)
    assert store.for_plugin("v6-logic-02-5min").plugin_id == "v6-logic-02-5min"
    assert TARGET not in store.config.plugins
    with pytest.raises(ConfigError, match="database.use_shared"):
        Store.open(configs, strict=True)


def test_malformed_plugin_json_disables_only_that_plugin(tmp_path: Path) -> None:
    from zepix_store import Store

    configs = make_project(tmp_path)
    write_plugin(configs, '{"plugin_id": ')
    store = Store.open(configs)
    with pytest.raises(ConfigError, match=f"{TARGET}/config.json: line 1"):
        store.for_plugin(TARGET)
    assert len(store.config.plugins) == 7


@pytest.mark.parametrize("problem", ["escape", "shared-as-isolated", "duplicate-id"])
def test_what_endangers_isolation_still_stops_store_open(tmp_path: Path, problem: str) -> None:
    from zepix_store import Store

    configs = make_project(tmp_path)
    if problem == "escape":
        edit_database(configs, isolated_db="../elsewhere.db")
    elif problem == "shared-as-isolated":
        edit_database(configs, isolated_db="data/trading_bot.db")
    else:
        doc = json.loads(plugin_file(configs, TARGET).read_text())
        (configs / "plugins" / "v7-copy").mkdir()
        (configs / "plugins" / "v7-copy" / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError):
        Store.open(configs)
