"""Rewrite one value of a plugin's config.json in place: only `database.use_shared` changes.

The file is edited as text (every other key, their order and the indentation stay as the user wrote them),
checked by parsing both versions, and replaced atomically (temp file, fsync, rename).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from .errors import ConfigError

__all__ = ['set_use_shared']

_USE_SHARED = re.compile(r'("use_shared"\s*:\s*)(true|false)')


def set_use_shared(path: Path, value: bool) -> bool:
    """Set `database.use_shared` to `value`; return whether the file changed."""
    text = path.read_text(encoding="utf-8")
    before = json.loads(text)
    if not isinstance(before.get("database"), dict):
        raise ConfigError(f"{path}: no database block to switch")
    if before["database"].get("use_shared") is value:
        return False
    found = list(_USE_SHARED.finditer(text))
    if len(found) == 1:
        m = found[0]
        new = text[:m.start(2)] + ("true" if value else "false") + text[m.end(2):]
    elif not found:  # the template's form has no use_shared yet: add it first in the block
        block = re.search(r'"database"\s*:\s*\{', text)
        if block is None:
            raise ConfigError(f"{path}: cannot find the database block")
        new = text[:block.end()] + f' "use_shared": {"true" if value else "false"},' + text[block.end():]
    else:
        raise ConfigError(f"{path}: several use_shared keys; set database.use_shared by hand")
    after = json.loads(new)
    expected = json.loads(text)
    expected["database"]["use_shared"] = value
    if after != expected:
        raise ConfigError(f"{path}: use_shared is not only in the database block; set it by hand")
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        out.write(new)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(tmp, path.stat().st_mode & 0o777)
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return True
