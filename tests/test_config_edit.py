"""flip's config rewrite: only database.use_shared changes, as text; anything it cannot do safely is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zepix_store.config_edit import set_use_shared
from zepix_store.errors import ConfigError

WRITTEN = """{
    "plugin_id": "p1",
    "note": "use_shared is set below",
    "database":   {"use_shared": true,   "isolated_db": "data/p1.db"},
    "zzz": [1, 2, 3]
}
"""


def test_only_the_value_changes_and_every_other_byte_stays(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(WRITTEN)
    assert set_use_shared(path, False) is True
    assert path.read_text() == WRITTEN.replace('"use_shared": true', '"use_shared": false')
    assert set_use_shared(path, False) is False  # already so: the file is not rewritten
    assert not (tmp_path / "config.json.tmp").exists()


def test_the_template_form_gains_the_key(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"plugin_id": "p1", "database": {"path": "data/p1.db", "backup_enabled": true}}\n')
    set_use_shared(path, False)
    doc = json.loads(path.read_text())
    assert doc["database"] == {"use_shared": False, "path": "data/p1.db", "backup_enabled": True}


@pytest.mark.parametrize("text", [
    '{"database": {"use_shared": true}, "other": {"use_shared": true}}',  # the key twice
    '{"plugin_id": "p1"}',                                                # no database block
])
def test_what_cannot_be_edited_safely_is_refused_and_left_alone(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(ConfigError):
        set_use_shared(path, False)
    assert path.read_text() == text
