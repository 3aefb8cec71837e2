"""Load session scripts from YAML safely, with one-line ``file:line:column`` errors.

YAML is composed (never constructed) with PyYAML's safe loader, so no tag can run code;
the plain data is then built by hand from the node tree, remembering where every key and
value sits. Validation errors from the pydantic models are mapped back to those places
and reworded to say what is wrong and how to fix it (see :mod:`facilitator.script.errors`
for the wording). Limits keep a hostile file cheap to refuse: 256 KiB, 10,000 nodes with
aliases expanded, 64 levels of nesting.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.error import Mark, MarkedYAMLError
from yaml.events import AliasEvent, CollectionStartEvent, NodeEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from facilitator.script.errors import DataPath, Located, ScriptError, explain
from facilitator.script.models import Script

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_NODES", "ScriptError", "load_script", "load_script_text"]

MAX_BYTES = 256 * 1024
MAX_NODES = 10_000
MAX_DEPTH = 64

_YAML = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_YAML + t for t in ("str", "int", "float", "bool", "null"))
_TIMESTAMP, _MERGE, _SEQ, _MAP = (_YAML + t for t in ("timestamp", "merge", "seq", "map"))
_TYPE_NAMES = {_INT: "a number", _FLOAT: "a number", _BOOL: "true/false", _NULL: "empty"}
_TAB_INDENT = re.compile(r"^[ \t]*\t")


class _Refused(MarkedYAMLError):
    """A limit or rule of ours, raised while composing or building, at a mark."""

    def __init__(self, message: str, mark: Mark | None) -> None:
        super().__init__(problem=message, problem_mark=mark)


class _GuardedLoader(yaml.SafeLoader):
    """A safe loader whose composer counts nodes with aliases expanded and limits depth."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._sizes: dict[int, int] = {}
        self._open_anchors: set[str] = set()
        self._total = 0
        self._depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            return self._compose_alias(event)
        self._add(1, event.start_mark, "")
        anchor = event.anchor if isinstance(event, NodeEvent) else None
        if isinstance(event, CollectionStartEvent):
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise _Refused(f"nesting is deeper than {MAX_DEPTH} levels; flatten the script", event.start_mark)
        if anchor:
            self._open_anchors.add(anchor)
        node = super().compose_node(parent, index)
        if anchor:
            self._open_anchors.discard(anchor)
        if isinstance(event, CollectionStartEvent):
            self._depth -= 1
        if isinstance(node, SequenceNode):
            self._sizes[id(node)] = 1 + sum(self._sizes.get(id(child), 1) for child in node.value)
        elif isinstance(node, MappingNode):
            self._sizes[id(node)] = 1 + sum(
                self._sizes.get(id(k), 1) + self._sizes.get(id(v), 1) for k, v in node.value
            )
        return node

    def _compose_alias(self, event: AliasEvent) -> Node:
        self.get_event()
        name = event.anchor or ""
        if name in self._open_anchors:
            raise _Refused(f"alias *{name} is inside its own anchor &{name}; remove the alias", event.start_mark)
        if name not in self.anchors:
            raise _Refused(f"alias *{name} has no anchor &{name} before it; define it first", event.start_mark)
        target = self.anchors[name]
        size = self._sizes.get(id(target), 1)
        self._add(size, event.start_mark, name)
        # A shallow copy carries the alias's own position, for errors; the children are shared.
        copy = type(target)(target.tag, target.value, event.start_mark, event.end_mark)
        self._sizes[id(copy)] = size
        return copy

    def _add(self, count: int, mark: Mark | None, alias: str) -> None:
        self._total += count
        if self._total > MAX_NODES:
            where = f"alias *{alias} expands" if alias else "the script grows"
            raise _Refused(
                f"{where} past {MAX_NODES:,} YAML nodes (an alias bomb?); "
                "a script needs far fewer: write values out instead of nesting aliases",
                mark,
            )


class _Builder:
    """Plain Python data from a node tree, with the position of every key and value."""

    def __init__(self) -> None:
        self.located = Located()
        self._constructor = SafeConstructor()

    def build(self, node: Node, path: DataPath) -> Any:
        self.located.values[path] = _pos(node.start_mark)
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            if node.tag != _SEQ:
                raise _Refused(_tag_message(node.tag), node.start_mark)
            return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
        assert isinstance(node, ScalarNode)
        self.located.raw[path] = node.value
        return self._scalar(node)

    def _mapping(self, node: MappingNode, path: DataPath) -> dict[str, Any]:
        if node.tag != _MAP:
            raise _Refused(_tag_message(node.tag), node.start_mark)
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self._key(key_node)
            if key in result:
                line, column = self.located.keys[(*path, key)]
                raise _Refused(
                    f"duplicate key {key!r} (first at line {line}, column {column}); keep only one",
                    key_node.start_mark,
                )
            self.located.keys[(*path, key)] = _pos(key_node.start_mark)
            result[key] = self.build(value_node, (*path, key))
        return result

    def _key(self, node: Node) -> str:
        if node.tag == _MERGE:
            raise _Refused("merge keys ('<<') are not supported; write the keys out", node.start_mark)
        if not isinstance(node, ScalarNode):
            raise _Refused("a key must be plain text, not a list or mapping", node.start_mark)
        if node.tag != _STR:
            seen = _TYPE_NAMES.get(node.tag, "not text")
            raise _Refused(
                f"key {node.value!r} is read as {seen}; keys must be text: put it in quotes",
                node.start_mark,
            )
        return node.value

    def _scalar(self, node: ScalarNode) -> Any:
        tag, text = node.tag, node.value
        # YAML 1.1 reads 1:30 as 90 and 2024-05-01 as a date; keep what was written instead.
        if tag == _STR or tag == _TIMESTAMP or (tag in (_INT, _FLOAT) and ":" in text):
            return text
        readers = {
            _INT: self._constructor.construct_yaml_int,
            _FLOAT: self._constructor.construct_yaml_float,
            _BOOL: self._constructor.construct_yaml_bool,
            _NULL: self._constructor.construct_yaml_null,
        }
        if tag not in readers:
            raise _Refused(_tag_message(tag), node.start_mark)
        try:
            return readers[tag](node)
        except (ValueError, KeyError, ConstructorError):
            raise _Refused(f"{text!r} cannot be read as {_TYPE_NAMES[tag]}", node.start_mark) from None


def _pos(mark: Mark | None) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1) if mark else (1, 1)


def _tag_message(tag: str) -> str:
    shown = "!!" + tag[len(_YAML) :] if tag.startswith(_YAML) else tag
    return (
        f"the tag {shown!r} is not allowed in a script (scripts hold only text, numbers, "
        "true/false, lists and mappings); remove the tag"
    )


_SYNTAX_HINTS = [
    ("mapping values are not allowed", "if a value contains ': ', put the whole value in quotes"),
    ("could not find expected ':'", "check this line's indentation, or quote a value that contains ':'"),
    ("another document", "a script is a single document: remove the '---' line"),
    ("expected <block end>", "check the indentation of this line"),
    ("while scanning a quoted scalar", "a quote is not closed"),
]


def _syntax_error(exc: MarkedYAMLError, text: str, path: str) -> ScriptError:
    line, column = _pos(exc.problem_mark)
    tab = _tab_in_indentation(text, line)
    if tab is not None:
        return ScriptError(path, line, tab, "a tab is used for indentation; indent with spaces instead")
    problem = exc.problem or "invalid YAML"
    if isinstance(exc, _Refused):
        return ScriptError(path, line, column, problem)
    context = f" {exc.context}" if exc.context else ""
    hint = next((h for key, h in _SYNTAX_HINTS if key in problem + context), "check the YAML syntax here")
    if exc.context_mark and "quoted scalar" in context:
        hint += f" (it opens at line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1})"
    return ScriptError(path, line, column, f"YAML syntax:{context} {problem}; {hint}".replace(": while", ": while"))


def _tab_in_indentation(text: str, line: int) -> int | None:
    """Column (1-based) of a tab in the leading whitespace of ``line``, if there is one."""
    lines = text.splitlines()
    if 1 <= line <= len(lines) and (match := _TAB_INDENT.match(lines[line - 1])):
        return match.end()
    return None


def load_script_text(text: str, path: str = "<script>") -> Script:
    """Parse and validate a script; raise :class:`ScriptError` pointing at the first problem."""
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > MAX_BYTES:
        raise ScriptError(path, 1, 1, f"the file is {size / 1024:.0f} KiB; a script may be at most 256 KiB")
    # YAML forbids tabs for indentation; say so plainly rather than with PyYAML's wording.
    for number in range(1, text.count("\n") + 2):
        tab = _tab_in_indentation(text, number)
        if tab is not None and not _tab_is_content(text, number):
            raise ScriptError(path, number, tab, "a tab is used for indentation; indent with spaces instead")
    try:
        root = yaml.compose(text, Loader=_GuardedLoader)
        builder = _Builder()
        data = builder.build(root, ()) if root is not None else None
    except MarkedYAMLError as exc:
        raise _syntax_error(exc, text, path) from None
    except yaml.reader.ReaderError as exc:
        before = text[: exc.position]
        line, column = before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1
        raise ScriptError(path, line, column, f"character {exc.character!r} is not allowed; remove it") from None
    except RecursionError:
        raise ScriptError(path, 1, 1, f"nesting is too deep; keep it under {MAX_DEPTH} levels") from None
    if data is None:
        raise ScriptError(path, 1, 1, "the script is empty; it needs title, agreement, consent and phases")
    if not isinstance(data, dict):
        line, column = builder.located.values[()]
        raise ScriptError(
            path, line, column, "the top level must be a mapping of keys like 'title:' and 'phases:'"
        )
    try:
        return Script.model_validate(data)
    except ValidationError as exc:
        errors = explain(exc, data, builder.located, path)
        first = errors[0]
        raise ScriptError(first.path, first.line, first.column, first.message, errors) from None


def _tab_is_content(text: str, line: int) -> bool:
    """True when the tab sits inside a block scalar (``|`` or ``>``) and is part of the text."""
    try:
        yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return False
    return True


def load_script(path: str | Path) -> Script:
    """Read a UTF-8 script file and load it; every failure is a :class:`ScriptError`."""
    name = str(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ScriptError(name, 1, 1, "no such file; check the path") from None
    except IsADirectoryError:
        raise ScriptError(name, 1, 1, "this is a directory; give a .yaml file") from None
    except OSError as exc:
        raise ScriptError(name, 1, 1, f"cannot read the file ({exc.strerror}); check its permissions") from None
    if len(raw) > MAX_BYTES:
        raise ScriptError(name, 1, 1, "the file is over 256 KiB; a script may be at most 256 KiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScriptError(
            name, 1, 1, f"the file is not UTF-8 (bad byte at offset {exc.start}); save it as UTF-8"
        ) from None
    return load_script_text(text, name)
