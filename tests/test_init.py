"""`zepix-store init` in a folder shaped like the bot's: template plugin configs, a `_template`, the legacy file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import byte_digest, files_under, run
from zepix_store._sample.bot_history import build_bot_history
from zepix_store.ops.init import propose_target

PLUGINS = ("v3-logic-01-5min", "v3-logic-02-15min", "v3-logic-03-1h", "v6-logic-01-1min")


def make_bot(root: Path, plugins: tuple[str, ...] = PLUGINS, trades: int = 300, older: bool = False) -> Path:
    """The bot's folder: data/trading_bot.db, src/logic_plugins/<id>/config.json in the template's form."""
    (root / "data").mkdir(parents=True)
    build_bot_history(root / "data" / "trading_bot.db", trades=trades, older=older)
    for folder in (*plugins, "_template"):
        plugin_id = "{{plugin_id}}" if folder == "_template" else folder  # the template is no plugin
        doc = {"plugin_id": plugin_id, "name": folder.upper(), "enabled": True, "timeframe": "5m",
               "database": {"path": f"data/zepix_{folder}.db", "backup_enabled": True}}
        (root / "src" / "logic_plugins" / folder).mkdir(parents=True)
        (root / "src" / "logic_plugins" / folder / "config.json").write_text(json.dumps(doc, indent=2) + "\n")
    (root / "src" / "logic_plugins" / "__pycache__").mkdir()
    return root


def zx(command: str, *args: object, cwd: Path) -> tuple[int, str, str]:
    """`python -m zepix_store.<command>` run in `cwd`, as a trader runs it there (no --config)."""
    done = run([sys.executable, "-m", f"zepix_store.{command}", "-q", *map(str, args)], 120, cwd=cwd)
    return done.rc, done.stdout, done.stderr


@pytest.mark.parametrize("older", [False, True], ids=["bot-file", "older-bot-file"])
def test_init_then_split_then_verify_from_the_bot_folder(tmp_path: Path, older: bool) -> None:
    """The real layouts: strategy holds the logic, logic_type NULL (or, in an older file, no such column)."""
    bot = make_bot(tmp_path / "bot", older=older)
    before = byte_digest(bot / "data" / "trading_bot.db")
    rc, out, err = zx("init", cwd=bot)
    assert rc == 0, err
    assert byte_digest(bot / "data" / "trading_bot.db") == before  # init only reads the legacy file
    store = yaml.safe_load((bot / "configs" / "store.yaml").read_text())
    assert store["plugins_dir"] == "src/logic_plugins" and store["shared_db"] == "data/trading_bot.db"
    assert store["mapping"]["LOGIC1"] == store["mapping"]["combinedlogic-1"] == "v3-logic-01-5min"
    assert "SL_HUNT_RECOVERY" not in store["mapping"]
    assert "_template" not in out and "{{plugin_id}}" not in out
    for step in ("zepix-store backup", "zepix-store split --dry-run", "zepix-store verify",
                 "from zepix_store.compat import TradeDatabase", "TradeDatabase(plugin_id)"):
        assert step in out, step
    assert "left unmapped (strategy" in out and "'SL_HUNT_RECOVERY' x" in out
    assert "left out" not in out and err == ""
    for command in ("backup", "split", "verify"):
        rc, out, err = zx(command, cwd=bot)
        assert rc == 0, (command, out[-2000:], err[-2000:])
    for plugin in PLUGINS:
        assert (bot / "data" / f"zepix_{plugin}.db").is_file()
    rc, out, err = zx("verify", cwd=bot / "data")  # configs/ found from a subfolder too
    assert rc == 0, err


def test_init_counts_what_split_would_move(tmp_path: Path) -> None:
    bot = make_bot(tmp_path / "bot")
    rc, out, err = zx("init", "--json", cwd=bot)
    assert rc == 0, err
    doc = json.loads(out)
    rc, out, err = zx("split", "--dry-run", "--json", cwd=bot)
    assert rc == 0, err
    preview = json.loads(out)["plugins"]
    found = {p["plugin_id"]: p for p in doc["plugins"]}
    assert sorted(found) == sorted(PLUGINS)
    for pid, p in found.items():
        assert p["route"] == "isolated" and p["file"] == f"data/zepix_{pid}.db"
        assert p["config"] == f"src/logic_plugins/{pid}/config.json"
        assert p["trades"] == preview[pid]["tables"]["trades"]["source_rows"]
        assert p["rows"] == sum(t["source_rows"] for t in preview[pid]["tables"].values())
    assert sum(found[p]["trades"] for p in PLUGINS[:3]) > 0
    unmapped = {(u["column"], u["value"]): u["trades"] for u in doc["unmapped"]}
    assert unmapped[("strategy", "SL_HUNT_RECOVERY")] > 0
    assert doc["written"] == ["configs/store.yaml"] and doc["disabled"] == {}


def test_init_never_overwrites_store_yaml(tmp_path: Path) -> None:
    bot = make_bot(tmp_path / "bot")
    (bot / "configs").mkdir()
    (bot / "configs" / "store.yaml").write_text("# mine\n")
    rc, out, err = zx("init", cwd=bot)
    assert rc == 2 and "configs/store.yaml" in err and "--force" in err
    assert (bot / "configs" / "store.yaml").read_text() == "# mine\n"
    rc, out, err = zx("init", "--force", cwd=bot)
    assert rc == 0, err
    assert (bot / "configs" / "store.yaml.bak").read_text() == "# mine\n"
    assert "plugins_dir: src/logic_plugins" in (bot / "configs" / "store.yaml").read_text()


def test_init_dry_run_writes_nothing(tmp_path: Path) -> None:
    bot = make_bot(tmp_path / "bot")
    before = files_under(bot)
    rc, out, err = zx("init", "--dry-run", cwd=bot)
    assert rc == 0, err
    assert files_under(bot) == before
    assert "would write configs/store.yaml" in out and "plugins_dir: src/logic_plugins" in out


def test_init_copy_puts_the_configs_beside_store_yaml(tmp_path: Path) -> None:
    bot = make_bot(tmp_path / "bot")
    rc, out, err = zx("init", "--copy", "--root", bot, cwd=tmp_path)
    assert rc == 0, err
    assert "--config" in out  # run from elsewhere: the next commands name the config folder
    for pid in PLUGINS:
        copied = bot / "configs" / "plugins" / pid / "config.json"
        assert copied.read_bytes() == (bot / "src" / "logic_plugins" / pid / "config.json").read_bytes()
    assert not (bot / "configs" / "plugins" / "_template").exists()
    assert yaml.safe_load((bot / "configs" / "store.yaml").read_text())["plugins_dir"] == "configs/plugins"
    rc, out, err = zx("split", cwd=bot)
    assert rc == 0, err


def test_init_names_a_broken_plugin_config_and_sets_up_the_rest(tmp_path: Path) -> None:
    bot = make_bot(tmp_path / "bot")
    broken = bot / "src" / "logic_plugins" / "v6-logic-01-1min" / "config.json"
    broken.write_text('{"plugin_id": "v6-logic-01-1min", "database": {"path": 5}}')
    rc, out, err = zx("init", cwd=bot)
    assert rc == 2
    assert "src/logic_plugins/v6-logic-01-1min/config.json" in err and "database.path" in err
    assert (bot / "configs" / "store.yaml").is_file()
    assert "v3-logic-01-5min" in out


def test_a_mapping_is_proposed_only_for_a_value_that_names_one_plugin() -> None:
    assert propose_target("LOGIC1", list(PLUGINS)) == ("v3-logic-01-5min", "logic 1")
    assert propose_target("combinedlogic-2", list(PLUGINS))[0] == "v3-logic-02-15min"
    assert propose_target("v6-logic-01-1min", list(PLUGINS))[0] == "v6-logic-01-1min"
    assert propose_target("LOGIC1", ["v3-logic-01-5min", "v3-logic-01-1h"])[0] is None  # two candidates
    assert propose_target("LOGIC4", list(PLUGINS))[0] is None
    assert propose_target("SL_HUNT_RECOVERY", list(PLUGINS))[0] is None
    assert propose_target(" LOGIC1", list(PLUGINS))[0] is None  # a stray space is the user's to map
