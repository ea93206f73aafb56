"""Reading the config files safely: bounded reads, strict YAML and JSON (duplicate keys and non-finite numbers
refused), paths resolved inside the project, and the one-line messages every config error uses."""

from __future__ import annotations

import codecs
import json
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import yaml

from zepix_store.errors import ConfigError

__all__: list[str] = []  # private to config.py

MAX_CONFIG_BYTES = 1 << 20
_YAML_MERGE_TAG = "tag:yaml.org,2002:merge"


class _IsolationConfigError(ConfigError):
    """A config error that endangers isolation: refused even by a lenient load."""


class _DuplicateKeyError(Exception):
    def __init__(self, field: str, line: int) -> None:
        super().__init__(field)
        self.field = field
        self.line = line


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, which PyYAML would silently let the last one win."""

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        if node is not None:
            self._check_keys(node, "", set())
        return node

    def _check_keys(self, node: yaml.Node, field: str, seen: set[int]) -> None:
        if id(node) in seen:  # aliases may repeat a node, or even make a cycle
            return
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for index, child in enumerate(node.value):
                self._check_keys(child, f"{field}[{index}]", seen)
        elif isinstance(node, yaml.MappingNode):
            self._check_mapping_keys(node, field, seen)

    def _check_mapping_keys(self, node: yaml.MappingNode, field: str, seen: set[int]) -> None:
        keys: set[object] = set()
        for key_node, value_node in node.value:
            merge = key_node.tag == _YAML_MERGE_TAG
            key = "<<" if merge else self.construct_object(key_node, deep=True)
            name = f"{field}.{_key(key)}" if field else _key(key)
            if not merge and _hashable(key):
                if key in keys:
                    raise _DuplicateKeyError(name, key_node.start_mark.line + 1)
                keys.add(key)
            self._check_keys(value_node, name, seen)


def _parse_yaml(path: Path) -> object:
    text = _decode(path, _read_bytes(path), allow_bom=True)
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKeyError as exc:
        raise _error(path, exc.field, f"duplicate key (line {exc.line})") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1} column {mark.column + 1}" if mark else "file"
        problem = ", ".join(part for part in (exc.context, exc.problem) if part)
        raise _error(path, where, f"malformed YAML: {problem}") from exc
    except yaml.YAMLError as exc:
        raise _error(path, "file", f"malformed YAML: {exc}") from exc
    except RecursionError:
        raise _error(path, "file", "malformed YAML: nested too deeply") from None


@dataclass(frozen=True, slots=True)
class _NonFinite:
    text: str


class _Pairs(list[tuple[str, object]]):
    """A JSON object's pairs in file order, so duplicates can be reported with their path."""

    __slots__ = ()


def _parse_float(text: str) -> float | _NonFinite:
    value = float(text)
    return value if math.isfinite(value) else _NonFinite(text)


def _parse_json(path: Path) -> dict[str, object]:
    text = _decode(path, _read_bytes(path, missing="not found; every folder in plugins_dir needs one"))
    try:
        raw = json.loads(text, object_pairs_hook=_Pairs, parse_constant=_NonFinite, parse_float=_parse_float)
        doc = _build_json(path, raw, "")
    except json.JSONDecodeError as exc:
        raise _error(path, f"line {exc.lineno} column {exc.colno}", f"malformed JSON: {exc.msg}") from exc
    except ValueError as exc:  # e.g. an integer over Python's digit limit
        raise _error(path, "file", f"malformed JSON: {exc}") from exc
    except RecursionError:
        raise _error(path, "file", "malformed JSON: nested too deeply") from None
    if not isinstance(doc, dict):
        raise _error(path, "top level", f"must be a JSON object, got {_describe(doc)}")
    return doc


def _build_json(path: Path, value: object, field: str) -> object:
    if isinstance(value, _Pairs):
        obj: dict[str, object] = {}
        for key, item in value:
            name = f"{field}.{_key(key)}" if field else _key(key)
            if key in obj:
                raise _error(path, name, "duplicate key")
            obj[key] = _build_json(path, item, name)
        return obj
    if isinstance(value, list):
        return [_build_json(path, item, f"{field}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, _NonFinite):
        raise _error(path, field or "top level", f"{value.text} is not a finite number; JSON has no NaN or Infinity")
    return value


def _read_bytes(path: Path, missing: str = "not found") -> bytes:
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):  # checked before open: a FIFO would block the read
            raise _error(path, "file", "is not a regular file")
        if info.st_size > MAX_CONFIG_BYTES:
            raise _error(path, "file", f"is {info.st_size} bytes, over the {MAX_CONFIG_BYTES} byte limit; not parsed")
        with open(path, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise _error(path, "file", missing) from None
    except OSError as exc:
        raise _error(path, "file", f"cannot read ({exc.strerror or exc})") from exc
    if len(data) > MAX_CONFIG_BYTES:
        raise _error(path, "file", f"is over the {MAX_CONFIG_BYTES} byte limit; not parsed")
    return data


def _decode(path: Path, data: bytes, *, allow_bom: bool = False) -> str:
    if data.startswith(codecs.BOM_UTF8):
        if not allow_bom:
            raise _error(path, "file", "starts with a UTF-8 byte order mark (BOM); save it as UTF-8 without BOM")
        data = data[len(codecs.BOM_UTF8) :]  # YAML allows a BOM
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _error(path, f"byte {exc.start}", "not valid UTF-8") from None
    if not text.strip():
        raise _error(path, "file", "is empty")
    return text


def _path_text_problem(raw: str) -> str | None:
    if not raw:
        return "the path is empty"
    if "\x00" in raw:
        return f"{_show(raw)} contains a NUL byte"
    if raw.lower().startswith("file:"):
        return f"{_show(raw)} is a URI; give a plain path"
    if raw.strip().lower() == ":memory:":
        return "':memory:' is not a file"
    return None


def _resolve_dir(file: Path, field: str, raw: str, root: Path) -> Path:
    problem = _path_text_problem(raw)
    if problem:
        raise _error(file, field, problem)
    resolved = Path(os.path.realpath(os.path.join(root, raw)))
    if os.path.exists(resolved) and not os.path.isdir(resolved):
        raise _error(file, field, f"{resolved} is not a folder")
    return resolved


def _resolve_inside(file: Path, field: str, raw: str, root: Path, data_dir: Path, *, is_file: bool = True) -> Path:
    """Resolve `raw` against `root`, following symlinks, and require the result inside `data_dir`."""
    problem = _path_text_problem(raw)
    if problem:  # each of these would put the database somewhere other than a file in data_dir
        raise _escape(file, field, f"escapes data dir {data_dir}: {problem}")
    if ".." in Path(raw).parts:
        raise _escape(file, field, f"{_show(raw)} escapes data dir {data_dir}: '..' is not allowed")
    real = os.path.realpath(os.path.join(root, raw))
    base = str(data_dir)
    if is_file and real == base:
        raise _escape(file, field, f"{_show(raw)} escapes data dir {data_dir}: it is that folder, not a file in it")
    if os.path.commonpath([real, base]) != base:
        raise _escape(file, field, f"{_show(raw)} escapes data dir {data_dir}: it resolves to {real}")
    if _has_symlink(real, base):
        raise _escape(file, field, f"{_show(raw)} runs into a symlink loop")
    if is_file and os.path.isdir(real):
        raise _error(file, field, f"{real} is a folder, not a database file")
    return Path(real)


def _has_symlink(real: str, stop: str) -> bool:
    # realpath leaves a symlink in its result only where it met a loop
    current = real
    while current != stop and current != os.path.dirname(current):
        if os.path.islink(current):
            return True
        current = os.path.dirname(current)
    return False


def _error(file: Path | str, field: str, problem: str) -> ConfigError:
    return _one_line(f"{file}: {field}: {problem}")


def _escape(file: Path | str, field: str, problem: str) -> ConfigError:
    return _IsolationConfigError(" ".join(f"{file}: {field}: {problem}".splitlines()))


def _one_line(message: str) -> ConfigError:
    return ConfigError(" ".join(message.splitlines()))


def _show(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}...({len(text)} chars)"


def _describe(value: object) -> str:
    if value is None:
        return "nothing (null)"
    return f"{type(value).__name__} {_show(value)}"


def _key(key: object) -> str:
    return key if isinstance(key, str) and key.isprintable() and key else _show(key)


def _hashable(value: object) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True
