"""Build a realistic legacy trading_bot.db in a scratch folder, then run migrate, split, verify and stats there.

The history is shaped like the real bot's (strategy carrying the logic, dual orders, re-entries and recoveries
on their chains, open snapshots superseded by closed rows, naive local timestamps), after the edge cases
every report must handle. Never touches your own data/: everything lives in --dir (default: a new temporary
folder), which must be empty or absent. The legacy file is seeded, so two runs with the same --seed and
--trades in the same hour are identical.

At the end it names the folder, its configs and the commands to try next on it (each with --config).

examples:
  zepix-store demo
  zepix-store demo --trades 50000 --dir /tmp/zepix-demo

exit codes: 0 every step passed, 1 a step's check failed (the demo stops there), 2 bad input (--dir not empty),
3 disk full or I/O error.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shlex
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import legacy_data
from ._output import print_json
from ._sample.bot_history import build_bot_history
from .cli import command_main
from .errors import ConfigError

V3_GROUP_FILE = "data/zepix_v3_logic_combined.db"
DEMO_PLUGINS: dict[str, str] = {
    "v3-logic-01-5min": V3_GROUP_FILE,
    "v3-logic-02-15min": V3_GROUP_FILE,
    "v3-logic-03-1h": V3_GROUP_FILE,
    "v3-logic-combined": V3_GROUP_FILE,
    "v6-logic-01-1min": "data/zepix_v6_logic_01_1min.db",
    "v6-logic-02-5min": "data/zepix_v6_logic_02_5min.db",
    "v6-logic-03-15min": "data/zepix_v6_logic_03_15min.db",
    "v6-logic-04-1h": "data/zepix_v6_logic_04_1h.db",
}
STORE_YAML = """\
data_dir: data
shared_db: data/trading_bot.db
backup_dir: data/backups
plugins_dir: configs/plugins
default_plugin_id: legacy
mapping_columns: [logic_type, strategy]
timezone: local
mapping:
"""


def write_project(root: Path) -> Path:
    """Write the shipped configuration (every plugin isolated) under `root`; return the configs folder."""
    configs = root / "configs"
    (configs / "plugins").mkdir(parents=True)
    mapping = "".join(f"  {k}: {v}\n" for k, v in legacy_data.MAPPING.items())
    (configs / "store.yaml").write_text(STORE_YAML + mapping)
    for plugin_id, isolated in DEMO_PLUGINS.items():
        folder = configs / "plugins" / plugin_id
        folder.mkdir()
        doc = {"plugin_id": plugin_id,
               "database": {"use_shared": False, "shared_db": "data/trading_bot.db", "isolated_db": isolated}}
        (folder / "config.json").write_text(json.dumps(doc, indent=2) + "\n")
    (root / "data").mkdir(mode=0o700)
    return configs


def _scratch_dir(requested: str | None) -> Path:
    if requested is None:
        return Path(tempfile.mkdtemp(prefix="zepix-demo-"))
    path = Path(requested).absolute()
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ConfigError(f"{path}: --dir must be an empty or new folder (the demo never writes into existing data)")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _run_step(main: Callable[[Sequence[str]], int], argv: list[str], as_json: bool) -> tuple[int, Any]:
    """Run a command's main(); with --json capture its document instead of letting it print."""
    if not as_json:
        return main(argv), None
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([*argv, "--json"])
    text = out.getvalue().strip()
    return code, json.loads(text) if text else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", help="scratch folder (empty or new; default: a new temporary folder)")
    parser.add_argument("--trades", type=int, default=5000, help="legacy trades to generate (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the generated history")


def run(args: argparse.Namespace) -> int:
    from . import migrate, split, stats, verify

    if args.trades < 1:
        raise ConfigError("--trades: must be at least 1")

    def say(message: str) -> None:
        if not args.json:  # the human report goes to stdout; with --json only the document does
            print(message, flush=True)

    root = _scratch_dir(args.dir)
    configs = write_project(root)
    shared = root / "data" / "trading_bot.db"
    say(f"== demo project: {root}\n   configs: {configs} (store.yaml and one folder per plugin)\n"
        f"   data:    {root / 'data'}")
    summary = build_bot_history(shared, trades=args.trades, seed=args.seed)
    say(f"\n== 1. legacy database: {shared} ({sum(summary.rows.values()):,} rows in {len(summary.rows)} tables)")
    common = ["--config", str(configs)] + (["-q"] if args.quiet or args.json else [])
    document: dict[str, Any] = {"dir": str(root), "configs": str(configs), "legacy_db": str(shared),
                                "legacy_rows": summary.rows, "steps": {}}
    steps: list[tuple[str, Callable[[Sequence[str]], int], list[str]]] = [
        ("migrate", migrate.main, []), ("split", split.main, []), ("verify", verify.main, []),
        ("stats", stats.main, [])]
    worst = 0
    for number, (name, main, extra) in enumerate(steps, start=2):
        say(f"\n== {number}. {name}")
        code, doc = _run_step(main, [*common, *extra], args.json)
        document["steps"][name] = {"exit_code": code, "report": doc}
        worst = max(worst, code)
        if code != 0:
            say(f"{name} exited {code}; stopping")
            break
    files = sorted(str(p) for p in (root / "data").rglob("*") if p.is_file())
    document["files"] = files
    document["next"] = next_commands(root, configs)
    if args.json:
        print_json(document)
    else:
        print("\n== files made\n" + "\n".join(f"  {f}" for f in files))
        print(f"\n== next: try the commands on this project (its configs are {configs})\n"
              + "\n".join(f"  {c}" for c in document["next"]))
    return worst


def next_commands(root: Path, configs: Path) -> list[str]:
    """What to run next on the demo project, each a complete command (--config included)."""
    where = shlex.quote(str(configs))
    return [f"zepix-store stats --config {where} --days 30",
            f"zepix-store stats --config {where} --plugin v3-logic-01-5min --json",
            f"zepix-store verify --config {where}",
            f"zepix-store backup --config {where} --all",
            f"zepix-store split --config {where} --dry-run",
            f"rm -r {shlex.quote(str(root))}    # when done: the demo wrote nothing anywhere else"]


def main(argv: Sequence[str] | None = None) -> int:
    return command_main("demo", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
