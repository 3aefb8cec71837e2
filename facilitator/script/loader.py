"""Load session scripts from YAML safely, with one-line ``file:line:column`` errors.

YAML is composed (never constructed) with PyYAML's safe loader, so no tag can run code;
the plain data is built by hand from the node tree, remembering where every key and value
sits. Validation errors from the pydantic models are mapped back to those places and
reworded to say what is wrong and how to fix it; that half, and :class:`ScriptError`
itself, live in :mod:`facilitator.script.errors`. Limits keep a hostile file cheap to
refuse: 256 KiB, 10,000 nodes with aliases expanded, 64 levels of nesting.

A script read from a file (:func:`load_script`, for ``check``; the library, for ``start``) is
also checked against the prompt banks it names (:func:`check_prompts`): a bank or pinned
prompt id that does not exist is an error at its line and column, not a surprise when the
circle opens. Only a regular UTF-8 file is read (see :mod:`facilitator.script.files`).
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, cast

import yaml
from pydantic import ValidationError
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.error import Mark, MarkedYAMLError
from yaml.events import AliasEvent, CollectionStartEvent, NodeEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from facilitator.prompts import BankError, bank_names, find_bank, prompts_dir
from facilitator.script.errors import DataPath, Located, Position, ScriptError, explain
from facilitator.script.files import LINE_BREAK, UnreadableFile, read_text_file
from facilitator.script.models import OpenPhase, PromptRef, RoundPhase, Script

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_NODES",
    "ScriptError",
    "check_prompts",
    "load_script",
    "load_script_text",
    "read_script_file",
]

MAX_BYTES = 256 * 1024
MAX_NODES = 10_000
MAX_DEPTH = 64


# ---------------------------------------------------------------------------- reading YAML

_YAML = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_YAML + t for t in ("str", "int", "float", "bool", "null"))
_TIMESTAMP, _MERGE, _SEQ, _MAP = (_YAML + t for t in ("timestamp", "merge", "seq", "map"))
_READ_AS = {_INT: "a number", _FLOAT: "a number", _BOOL: "true/false", _NULL: "empty"}
_TAB_INDENT = re.compile(r"[ \t]*\t")
_TAB_MESSAGE = "a tab is used for indentation; indent with spaces instead"


class _Refused(MarkedYAMLError):
    """One of our own rules or limits, broken at ``mark``."""

    def __init__(self, message: str, mark: object) -> None:
        super().__init__(problem=message, problem_mark=cast(Mark, mark))


class _GuardedLoader(yaml.SafeLoader):
    """A safe loader whose composer counts nodes with aliases expanded, and limits depth."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._sizes: dict[int, int] = {}
        self._open_anchors: set[str] = set()
        self._total = 0
        self._depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, AliasEvent):
            return self._alias(event)
        self._count(1, event.start_mark, None)
        anchor = event.anchor if isinstance(event, NodeEvent) else None
        nested = isinstance(event, CollectionStartEvent)
        self._depth += nested
        if self._depth > MAX_DEPTH:
            raise _Refused(f"nesting is deeper than {MAX_DEPTH} levels; flatten the script", event.start_mark)
        if anchor:
            self._open_anchors.add(anchor)
        node = super().compose_node(parent, index)
        self._open_anchors.discard(anchor or "")
        self._depth -= nested
        if isinstance(node, SequenceNode):
            self._sizes[id(node)] = 1 + sum(self._size(child) for child in node.value)
        elif isinstance(node, MappingNode):
            self._sizes[id(node)] = 1 + sum(self._size(k) + self._size(v) for k, v in node.value)
        return node

    def _size(self, node: Node) -> int:
        return self._sizes.get(id(node), 1)

    def _alias(self, event: AliasEvent) -> Node:
        self.get_event()  # type: ignore[no-untyped-call]
        name = event.anchor or ""
        if name in self._open_anchors:
            raise _Refused(f"alias *{name} is inside its own anchor &{name}; remove it", event.start_mark)
        if name not in self.anchors:
            raise _Refused(f"alias *{name} has no anchor &{name} before it; define it first", event.start_mark)
        target = self.anchors[name]
        self._count(self._size(target), event.start_mark, name)
        # A shallow copy carries the alias's own position for errors; children stay shared.
        start, end = cast(Mark, event.start_mark), cast(Mark, event.end_mark)
        copy = type(target)(target.tag, target.value, start, end)
        self._sizes[id(copy)] = self._size(target)
        return copy

    def _count(self, nodes: int, mark: object, alias: str | None) -> None:
        self._total += nodes
        if self._total > MAX_NODES:
            if alias:
                message = f"alias *{alias} expands the script past {MAX_NODES:,} YAML nodes (an alias bomb?); "
                raise _Refused(message + "write the values out instead of nesting aliases", mark)
            raise _Refused(f"the script has more than {MAX_NODES:,} YAML nodes; a script needs far fewer", mark)


class _Builder:
    """Plain Python data from a node tree, recording positions on the way."""

    def __init__(self) -> None:
        self.located = Located()
        constructor = SafeConstructor()
        self._readers = {
            _INT: constructor.construct_yaml_int,
            _FLOAT: constructor.construct_yaml_float,
            _BOOL: constructor.construct_yaml_bool,
            _NULL: constructor.construct_yaml_null,
        }

    def build(self, node: Node, path: DataPath) -> Any:
        self.located.values[path] = _position(node.start_mark)
        if len(path) > MAX_DEPTH:  # aliases can nest deeper than the text does
            raise _Refused(f"nesting is deeper than {MAX_DEPTH} levels; flatten the script", node.start_mark)
        if isinstance(node, MappingNode) and node.tag == _MAP:
            return self._mapping(node, path)
        if isinstance(node, SequenceNode) and node.tag == _SEQ:
            return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
        if not isinstance(node, ScalarNode):
            raise _Refused(_tag_message(node.tag), node.start_mark)
        # YAML 1.1 reads 1:30 as 90 and 2024-05-01 as a date; keep what was written instead.
        if node.tag in (_STR, _TIMESTAMP) or (node.tag in (_INT, _FLOAT) and ":" in node.value):
            return node.value
        if node.tag not in self._readers:
            raise _Refused(_tag_message(node.tag), node.start_mark)
        try:
            return self._readers[node.tag](node)
        except (ValueError, KeyError, ConstructorError):
            raise _Refused(f"{node.value!r} cannot be read as {_READ_AS[node.tag]}", node.start_mark) from None

    def _mapping(self, node: MappingNode, path: DataPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                raise _Refused("merge keys ('<<') are not supported; write the keys out", key_node.start_mark)
            if not isinstance(key_node, ScalarNode) or key_node.tag != _STR:
                seen = _READ_AS.get(key_node.tag, "a list or mapping")
                raise _Refused(f"this key is read as {seen}; keys must be text, so quote it", key_node.start_mark)
            key = key_node.value
            if key in result:
                line, column = self.located.keys[(*path, key)]
                raise _Refused(
                    f"duplicate key {key!r} (first at line {line}, column {column}); keep only one",
                    key_node.start_mark,
                )
            self.located.keys[(*path, key)] = _position(key_node.start_mark)
            result[key] = self.build(value_node, (*path, key))
        return result


def _position(mark: Mark | None) -> Position:
    return (mark.line + 1, mark.column + 1) if mark else (1, 1)


def _tag_message(tag: str) -> str:
    shown = "!!" + tag.removeprefix(_YAML) if tag.startswith(_YAML) else tag
    return (
        f"the tag {shown!r} is not allowed in a script (scripts hold only text, numbers, "
        "true/false, lists and mappings); remove the tag"
    )


_SYNTAX_HINTS = [
    ("mapping values are not allowed", "if a value contains ': ', put the whole value in quotes"),
    ("could not find expected ':'", "check this line's indentation, or quote a value containing ':'"),
    ("another document", "a script is a single document: remove the '---' line"),
    ("expected <block end>", "check the indentation of this line"),
    ("quoted scalar", "a quote is not closed"),
]


def _tab_lines(text: str) -> dict[int, int]:
    """Line -> column (both 1-based) of the first tab in each line's leading whitespace."""
    found: dict[int, int] = {}
    for number, line in enumerate(LINE_BREAK.split(text), start=1):
        if match := _TAB_INDENT.match(line):
            found[number] = match.end()
    return found


def _syntax_error(exc: MarkedYAMLError, tabs: dict[int, int], path: str) -> ScriptError:
    line, column = _position(exc.problem_mark)
    problem = exc.problem or "this is not valid YAML"
    if isinstance(exc, _Refused):
        return ScriptError(path, line, column, problem)
    before = [n for n in tabs if n <= line]
    if line in tabs or (before and "'\\t'" in problem):
        at = line if line in tabs else before[0]
        return ScriptError(path, at, tabs[at], _TAB_MESSAGE)
    context = f"{exc.context}: " if exc.context else ""
    hint = next((h for key, h in _SYNTAX_HINTS if key in context + problem), "check the YAML syntax here")
    if exc.context_mark and "quoted scalar" in context:
        hint += f" (it opens at line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1})"
    return ScriptError(path, line, column, f"YAML syntax: {context}{problem}; {hint}")


def _read_yaml(text: str, path: str) -> tuple[Any, Located]:
    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_BYTES:
        message = f"the script is {size:,} bytes; a script may be at most 256 KiB ({MAX_BYTES:,} bytes)"
        raise ScriptError(path, 1, 1, message)
    # A tab in indentation is checked up front: PyYAML's own wording for it is cryptic. A tab
    # inside the text of a block scalar is fine, so it only counts where the YAML fails.
    tabs = _tab_lines(text)
    builder = _Builder()
    try:
        root = yaml.compose(text, Loader=_GuardedLoader)
        return (builder.build(root, ()) if root is not None else None), builder.located
    except MarkedYAMLError as exc:
        raise _syntax_error(exc, tabs, path) from None
    except yaml.reader.ReaderError as exc:
        before = text[: exc.position]
        line, column = before.count("\n") + 1, exc.position - before.rfind("\n")
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        message = f"the control character U+{code:04X} is not allowed in a script; remove it"
        raise ScriptError(path, line, column, message) from None


def read_yaml(text: str, path: str) -> tuple[Any, Located]:
    """Safe, size- and alias-guarded YAML with each node's position (for other files, like config)."""
    return _read_yaml(text, path)


def load_script_text(text: str, path: str = "<script>") -> Script:
    """Parse and validate a script; raise :class:`ScriptError` pointing at the first problem."""
    data, located = _read_yaml(text, path)
    if data is None:
        raise ScriptError(path, 1, 1, "the script is empty; it needs title, agreement, consent and phases")
    if not isinstance(data, dict):
        line, column = located.values[()]
        message = "the top level must be a mapping of keys like 'title:' and 'phases:', not a list or text"
        raise ScriptError(path, line, column, message)
    try:
        return Script.model_validate(data)
    except ValidationError as exc:
        errors = explain(exc, data, located, path)
        first = errors[0]
        raise ScriptError(path, first.line, first.column, first.message, errors) from None


def read_script_file(path: str | Path) -> str:
    """The text of a script file; every failure (no such file, a directory or a pipe, too big,
    not UTF-8) is a :class:`ScriptError` at the line and column it is about."""
    try:
        return read_text_file(path, MAX_BYTES, what="script")
    except UnreadableFile as exc:
        raise ScriptError(str(path), exc.line, exc.column, exc.message) from None


def load_script(path: str | Path) -> Script:
    """Read a UTF-8 script file and load it, with its prompt banks; every failure is a :class:`ScriptError`."""
    name = str(path)
    text = read_script_file(path)
    script = load_script_text(text, name)
    check_prompts(script, text, name)
    return script


def check_prompts(script: Script, text: str, path: str) -> None:
    """Raise :class:`ScriptError` at each ``prompt: {bank: ...}`` whose bank or pinned id the
    prompts folder does not hold (or cannot read), so a circle never starts and then finds out.

    ``text`` is the script's own text: it is read again for positions only when something is wrong.
    """
    problems = _prompt_problems(script)
    if not problems:
        return
    _, located = _read_yaml(text, path)
    errors = []
    for at, message in problems:
        while at not in located.values:  # the nearest node that exists
            at = at[:-1]
        errors.append(ScriptError(path, *located.values[at], message))
    errors.sort(key=lambda e: (e.line, e.column))
    first = errors[0]
    raise ScriptError(path, first.line, first.column, first.message, errors)


def _prompt_problems(script: Script) -> list[tuple[DataPath, str]]:
    """(where, what is wrong) for every prompt reference the banks cannot answer."""
    problems: list[tuple[DataPath, str]] = []
    known: list[str] | None = None
    for index, phase in enumerate(script.phases):
        if not isinstance(phase, RoundPhase | OpenPhase) or not isinstance(phase.prompt, PromptRef):
            continue
        ref, at = phase.prompt, ("phases", index, "prompt")
        known = bank_names() if known is None else known
        if ref.bank not in known:
            problems.append(((*at, "bank"), _no_bank(ref.bank, known)))
            continue
        try:
            bank = find_bank(ref.bank)
        except BankError as exc:
            problems.append(((*at, "bank"), f"prompt bank {ref.bank!r} cannot be used: {exc}; fix that file"))
            continue
        if ref.id is not None and ref.id not in bank.ids:
            close = difflib.get_close_matches(ref.id, bank.ids, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            message = f"bank {ref.bank!r} has no prompt {ref.id!r}{hint}; its prompts: {', '.join(bank.ids)}"
            problems.append(((*at, "id"), message))
    return problems


def _no_bank(name: str, known: list[str]) -> str:
    if not known:
        folder = prompts_dir() / "banks"
        return (
            f"no prompt bank {name!r}: there are no banks in {folder}; "
            "set FACILITATOR_PROMPTS_DIR to the folder that holds banks/, or write the prompt as text"
        )
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"no prompt bank {name!r}{hint}; banks here: {', '.join(known)}"
