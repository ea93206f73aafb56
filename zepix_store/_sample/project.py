"""A project folder made of the shipped configs (package data, a copy of the checkout's `configs/`)."""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

__all__ = ["shipped_configs", "write_project"]


def shipped_configs() -> Traversable:
    """The shipped `configs/` folder: store.yaml and one folder per plugin."""
    return resources.files(__package__).joinpath("configs")


def write_project(root: Path) -> Path:
    """Write the shipped configs (every plugin isolated) and an owner-only data/ under `root`; return configs/."""
    configs = root / "configs"
    _copy_tree(shipped_configs(), configs)
    (root / "data").mkdir(mode=0o700)
    return configs


def _copy_tree(source: Traversable, target: Path) -> None:
    target.mkdir(parents=True)
    for entry in sorted(source.iterdir(), key=lambda e: e.name):
        if entry.is_dir():
            _copy_tree(entry, target / entry.name)
        elif entry.name.endswith((".yaml", ".json")):
            (target / entry.name).write_bytes(entry.read_bytes())
