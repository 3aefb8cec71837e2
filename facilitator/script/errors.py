"""Word pydantic validation errors for script authors, at the line and column they are about.

The loader hands over the plain data it built and where each key and value sits in the file
(:class:`Located`). Each pydantic error is turned back into a path through that data, pointed
at the nearest position that exists, and reworded to say what is wrong and how to fix it,
naming places the way a reader would ("'turn' in phase 3 (round)"). Rules that cover a whole
script or phase (see ``models.py``) are located from their message text.

The serve configuration is read and explained the same way (``explain(..., root=ServeConfig)``):
its models' fields say which keys are allowed where, their ``examples`` show a right value, and
its rules over the whole file raise :class:`RuleError` with the path of the value to point at.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import re
from dataclasses import dataclass, field
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from facilitator.script.durations import DurationError, parse_duration
from facilitator.script.models import (
    AnnouncePhase,
    ClosePhase,
    Consent,
    OpenPhase,
    PromptRef,
    Role,
    RoundPhase,
    Script,
    SilencePhase,
)

__all__ = ["PHASE_MODELS", "DataPath", "Located", "Position", "RuleError", "ScriptError", "explain"]

DataPath = tuple[str | int, ...]
Position = tuple[int, int]


class ScriptError(Exception):
    """A script that cannot be used; ``str()`` is one line: ``path:line:column: message``."""

    def __init__(
        self, path: str, line: int, column: int, message: str, errors: list[ScriptError] | None = None
    ) -> None:
        self.path = path
        self.line = line
        self.column = column
        self.message = " ".join(message.splitlines())
        self.errors: list[ScriptError] = errors if errors else [self]
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.message}"


@dataclass
class Located:
    """Where each data path sits in the file: its value and (in a mapping) its key."""

    values: dict[DataPath, Position] = field(default_factory=dict)
    keys: dict[DataPath, Position] = field(default_factory=dict)


class RuleError(ValueError):
    """A rule over a whole model, broken by one value in it: :func:`explain` points there.

    ``at`` is the value's path inside the model that raised it, like ``("groups", 1, "name")``."""

    def __init__(self, message: str, at: DataPath) -> None:
        super().__init__(message)
        self.at = at


PHASE_MODELS: dict[str, type[BaseModel]] = {
    "announce": AnnouncePhase,
    "round": RoundPhase,
    "open": OpenPhase,
    "silence": SilencePhase,
    "close": ClosePhase,
}
_KINDS = ", ".join(PHASE_MODELS)

# (model, field) -> (what it is for, an example) for missing and empty values.
_NEEDS: dict[tuple[str, str], tuple[str, str]] = {
    ("Script", "title"): ("the name of the circle", 'title: "Thursday check-in"'),
    ("Script", "agreement"): ("read to everyone at the start", 'agreement: "What is said here stays here."'),
    ("Script", "consent"): ("what people agree to", 'consent: {version: "1", text: "I agree that ..."}'),
    ("Script", "phases"): (
        "the timed steps, ending with a close",
        'phases: [{kind: close, text: "Thanks."}]',
    ),
    ("Consent", "version"): ("changes whenever the text changes", 'version: "1"'),
    ("Consent", "text"): ("the exact words people agree to", 'text: "I agree that ..."'),
    ("Role", "name"): ("how phases refer to it", "name: presenter"),
    ("Role", "description"): ("what the role holder does", 'description: "Brings a case."'),
    ("PromptRef", "bank"): ("the prompt bank to draw from", "bank: warm-up"),
    ("RoundPhase", "turn"): ("how long each person holds the piece", 'turn: "90s"'),
    ("OpenPhase", "duration"): ("how long it lasts", 'duration: "10m"'),
    ("SilencePhase", "duration"): ("how long it lasts", 'duration: "1m"'),
    ("AnnouncePhase", "text"): ("the words the bot says", 'text: "Welcome, everyone."'),
    ("ClosePhase", "text"): ("the closing words", 'text: "Thank you for being here."'),
    ("RoundPhase", "rounds"): ("", "rounds: 2"),
    ("Script", "expected_participants"): ("", "expected_participants: 8"),
}
_WHOLE, _MAPPING, _TRUE_FALSE = "a whole number", "a mapping of keys", "true or false"
_EXPECTED = {
    **dict.fromkeys(("int_type", "int_parsing", "int_from_float"), _WHOLE),
    **dict.fromkeys(("model_type", "model_attributes_type", "dict_type"), _MAPPING),
    **dict.fromkeys(("bool_type", "bool_parsing"), _TRUE_FALSE),
    **dict.fromkeys(("float_type", "float_parsing"), "a number"),
    "string_type": "text",
    **dict.fromkeys(("list_type", "tuple_type"), "a list"),
    "path_type": "a file or folder name",
}
_Explained = tuple[str, DataPath, bool]  # message, where to point, whether at the key


def explain(
    exc: ValidationError, data: dict[str, Any], located: Located, path: str, root: type[BaseModel] = Script
) -> list[ScriptError]:
    """Every validation error as a ScriptError, the first in the file first.

    ``root`` is the model ``data`` was validated against: a session script, or another
    document read the same way (the serve configuration); its fields name the allowed keys."""
    found: list[tuple[DataPath, str, ScriptError]] = []
    counted: set[DataPath] = set()  # lists long enough as written, "too short" only once items failed
    for error in exc.errors(include_url=False):
        at = _data_path(error["loc"], data, root)
        message, point, on_key = _message(error, at, data, root)
        found.append((at, error["type"], ScriptError(path, *_locate(point, located, on_key), message)))
        given, least = error.get("input"), error.get("ctx", {}).get("min_length")
        if error["type"] == "too_short" and isinstance(given, list) and isinstance(least, int) and len(given) >= least:
            counted.add(at)
    # A misspelt key also makes a field "missing"; its "did you mean" says it better.
    meant = {(*at[:-1], s) for at, kind, _ in found if kind == "extra_forbidden" and (s := _suggest(at, data, root))}
    errors: list[ScriptError] = []
    for at, kind, err in found:
        # A union member's "wrong type" is noise when another member found a real error inside;
        # so is a list's "too short" when it only lost the items that are wrong.
        inner = any(len(p) > len(at) and p[: len(at)] == at for p, _, _ in found)
        noise = (kind in _EXPECTED and inner) or (kind == "missing" and at in meant)
        noise = noise or (kind == "too_short" and at in counted and inner)
        if not noise and str(err) not in {str(e) for e in errors}:
            errors.append(err)
    return sorted(errors, key=lambda e: (e.line, e.column))


def _data_path(loc: tuple[str | int, ...], data: dict[str, Any], root: type[BaseModel]) -> DataPath:
    """A pydantic ``loc`` as a path through the data, without union and discriminator tags."""
    parts = list(loc)
    if len(parts) >= 3 and parts[0] == "phases":
        del parts[2]  # the tag of the discriminated union: ('phases', 2, 'round', 'turn')
    out: list[str | int] = []
    current: Any = data
    for part in parts:
        is_item = isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        if is_item or (isinstance(current, dict) and part in current):
            current = current[part]
        elif (model := _model_at(tuple(out), data, root)) is not None and part in model.model_fields:
            current = None  # a missing field
        else:
            continue  # a union member's tag, like 'PromptRef'
        out.append(part)
    return tuple(out)


def _phase(at: DataPath, data: dict[str, Any]) -> dict[str, Any] | None:
    """The phase mapping at ``('phases', i)``, if ``at`` is one."""
    phases = data.get("phases")
    if len(at) == 2 and at[0] == "phases" and isinstance(at[1], int) and isinstance(phases, list):
        phase = phases[at[1]] if at[1] < len(phases) else None
        return phase if isinstance(phase, dict) else None
    return None


def _model_at(at: DataPath, data: dict[str, Any], root: type[BaseModel]) -> type[BaseModel] | None:
    """The model that validates the mapping at ``at``, if we know it."""
    if root is not Script:
        return _field_model(root, at)
    if len(at) == 3 and at[2] == "prompt" and _phase(at[:2], data) is not None:
        return PromptRef
    if (phase := _phase(at, data)) is not None:
        return PHASE_MODELS.get(str(phase.get("kind")))
    fixed: dict[DataPath, type[BaseModel]] = {(): Script, ("consent",): Consent}
    return Role if len(at) == 2 and at[0] == "roles" else fixed.get(at)


def _field_model(root: type[BaseModel], at: DataPath) -> type[BaseModel] | None:
    """The model at ``at`` below ``root``, followed through its fields' types (X | None, tuples, lists)."""
    kind: Any = root
    for part in at:
        if isinstance(part, str) and _is_model(kind) and part in kind.model_fields:
            kind = _bare(kind.model_fields[part].annotation)
        elif isinstance(part, int) and get_origin(kind) in (tuple, list) and get_args(kind):
            kind = _bare(get_args(kind)[0])
        else:
            return None
    return kind if _is_model(kind) else None


def _bare(annotation: Any) -> Any:
    """``X`` from ``Annotated[X, ...]`` and ``X | None``."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
        elif get_origin(annotation) in (Union, UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _is_model(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, BaseModel)


def _field_example(at: DataPath, data: dict[str, Any], root: type[BaseModel], value: Any = None) -> str:
    """``key: value`` from the first of the ``examples`` of the field at ``at`` (or of the list
    holding the item at ``at``), or "". A single value where a list is wanted is shown as that list."""
    item = bool(at) and isinstance(at[-1], int)
    key_at = at[:-1] if item else at
    if not key_at or not isinstance(key_at[-1], str):
        return ""
    model = _model_at(key_at[:-1], data, root)
    info = model.model_fields.get(key_at[-1]) if model is not None else None
    if info is None or not info.examples:
        return ""
    example = info.examples[0]
    if isinstance(example, list) and not item and value is not None and not isinstance(value, dict | list):
        example = [value]
    return f"{key_at[-1]}: {_yaml(example)}"


def _yaml(value: Any) -> str:
    """``value`` as it would be written in YAML (flow style), quoted only where it must be."""
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        plain = re.fullmatch(r"[A-Za-z][\w ./+-]*(://[\w./-]+)?", value) and value.lower() not in _YAML_WORDS
        return value if plain else json.dumps(value)
    return str(value)


_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "y", "n", "null"}


def _where(at: DataPath, data: dict[str, Any]) -> str:
    """A reader's name for a place: "'turn' in phase 3 (round)", "item 2 of 'silent' in ..."."""
    if not at:
        return "the script"
    parent, last = at[:-1], at[-1]
    if isinstance(last, int) and parent == ("phases",):
        kind = (_phase(at, data) or {}).get("kind")
        return f"phase {last + 1} ({kind})" if isinstance(kind, str) and kind in PHASE_MODELS else f"phase {last + 1}"
    if isinstance(last, int):
        return f"role {last + 1}" if parent == ("roles",) else f"item {last + 1} of {_where(parent, data)}"
    return f"{last!r} in {_where(parent, data)}" if parent else repr(last)


def _locate(at: DataPath, located: Located, on_key: bool) -> Position:
    if on_key and at in located.keys:
        return located.keys[at]
    while at not in located.values:  # the nearest node that exists
        at = at[:-1]
    return located.values[at]


def _shown(value: Any) -> str:
    if isinstance(value, dict | list):
        return "a mapping" if isinstance(value, dict) else "a list"
    if isinstance(value, bool):
        return str(value).lower()
    text = str(value).replace("\n", "\\n")
    text = text if len(text) <= 40 else text[:37] + "..."
    return f'"{text}"' if isinstance(value, str) else text


def _message(error: ErrorDetails, at: DataPath, data: dict[str, Any], root: type[BaseModel]) -> _Explained:
    kind, ctx, value = error["type"], error.get("ctx", {}), error.get("input")
    if kind == "extra_forbidden":
        return _unknown_key(at, data, root), at, True
    if kind == "missing":
        return _missing(at, data, root), at[:-1], False
    if kind == "value_error" and isinstance(rule := ctx.get("error"), RuleError):
        return str(rule), (*at, *rule.at), False
    where = _where(at, data)
    if kind == "union_tag_invalid":
        tag = str(ctx.get("tag"))
        close = difflib.get_close_matches(tag, PHASE_MODELS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"{where} has unknown kind {tag!r}; use one of: {_KINDS}{hint}", (*at, "kind"), False
    if kind == "union_tag_not_found":
        return f"{where} has no 'kind'; add 'kind:' with one of: {_KINDS}", at, False
    model = _model_at(at[:-1], data, root)
    example = _NEEDS.get((model.__name__ if model else "", str(at[-1]) if at else ""), ("", ""))[1]
    written = _field_example(at, data, root, value)  # from the field's own examples, if it has any
    example = example or written
    if kind == "value_error" and isinstance(value, dict):
        rule = str(ctx.get("error", error["msg"]))
        if root is Script:
            return _model_rule(rule, at, data)
        return (f"{where}: {rule}" if at else rule), at, False
    if value is None:
        return f"{where} is empty; give it a value" + (f", e.g. {example}" if example else ""), at, False
    if kind == "value_error":
        return f"{where}: {ctx.get('error', error['msg'])}", at, False
    if kind in _EXPECTED and at and at[-1] == "prompt":
        return f"{where} should be text, or a bank like {{bank: warm-up}}; not {_shown(value)}", at, False
    if kind in _EXPECTED:
        message = f"{where} should be {_EXPECTED[kind]}, not {_shown(value)}"
        if kind == "string_type" and isinstance(value, int | float) and isinstance(at[-1], str):
            example = f'{at[-1]}: "{value}" (in quotes)'
        elif len(at) == 2 and at[0] == "phases":
            example = "- kind: round"
        return message + (f"; e.g. {example}" if example else ""), at, False
    return _constraint(kind, ctx, value, where) + (f"; e.g. {written}" if written else ""), at, False


def _constraint(kind: str, ctx: dict[str, Any], value: Any, where: str) -> str:
    if kind == "literal_error":
        close = difflib.get_close_matches(str(value), re.findall(r"'([^']*)'", str(ctx.get("expected"))), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"{where} should be {ctx.get('expected')}, not {_shown(value)}{hint}"
    if kind == "string_pattern_mismatch":
        example = "warm-up" if where.startswith("'bank'") else "presenter"
        return f"{where}: {_shown(value)} should be lowercase letters, digits and dashes, like {example}"
    if kind in ("greater_than_equal", "less_than_equal"):
        bound = f"at least {ctx.get('ge')}" if kind == "greater_than_equal" else f"at most {ctx.get('le')}"
        return f"{where} should be {bound}, not {_shown(value)}"
    if kind in ("greater_than", "less_than"):
        bound = f"more than {ctx.get('gt')}" if kind == "greater_than" else f"less than {ctx.get('lt')}"
        return f"{where} should be {bound}, not {_shown(value)}"
    if kind == "too_short" and isinstance(value, str):  # a text's length rule, as pydantic words some
        kind = "string_too_short"
    least = ctx.get("min_length")
    messages = {
        "string_too_short": f"{where} is empty; write some text",
        "string_too_long": f"{where} is too long; keep it to {ctx.get('max_length')} characters",
        "too_short": f"{where} needs at least {least} item" + ("" if least == 1 else "s"),
        "too_long": f"{where} has too many items; at most {ctx.get('max_length')} are allowed",
    }
    if kind == "too_short" and where == "'phases'":
        return "'phases' is empty; a script needs at least one phase, ending with '- kind: close'"
    return messages.get(kind, f"{where}: {_shown(value)} is not valid here")


def _unknown_key(at: DataPath, data: dict[str, Any], root: type[BaseModel]) -> str:
    key, container = str(at[-1]), at[:-1]
    model = _model_at(container, data, root)
    message = f"unknown key {key!r} " + (f"in {_where(container, data)}" if container else "at the top level")
    if model is None:
        return f"{message}; remove it"
    allowed = list(model.model_fields)
    if model is RoundPhase and key == "duration":
        return f"{message}; a round's length comes from 'turn' (each person's time), e.g. turn: \"90s\""
    if suggestion := _suggest(at, data, root):
        # The serve configuration has a few keys a level: they are listed in case the guess is wrong.
        also = "" if root is Script else f" (allowed keys: {', '.join(allowed)})"
        return f"{message}; did you mean {suggestion!r}?{also}"
    owners = [kind for kind, other in PHASE_MODELS.items() if key in other.model_fields]
    if owners and model in PHASE_MODELS.values():
        message += f" (only {', '.join(owners)} phases have it)"
    return f"{message}; allowed keys: {', '.join(allowed)}"


def _suggest(at: DataPath, data: dict[str, Any], root: type[BaseModel]) -> str | None:
    """The allowed key that the unknown key at ``at`` was probably meant to be."""
    model = _model_at(at[:-1], data, root)
    if model is RoundPhase and at[-1] == "duration":
        return "turn"
    close = difflib.get_close_matches(str(at[-1]), list(model.model_fields) if model else [], n=1)
    return close[0] if close else None


def _missing(at: DataPath, data: dict[str, Any], root: type[BaseModel]) -> str:
    name, container = str(at[-1]), at[:-1]
    model = _model_at(container, data, root)
    subject = _where(container, data)
    if (phase := _phase(container, data)) is not None:
        title = phase.get("name")
        number = container[-1] + 1 if isinstance(container[-1], int) else 0
        subject = f"{phase.get('kind')} phase " + (repr(title) if isinstance(title, str) else str(number))
    why, example = _NEEDS.get((model.__name__ if model else "", name), ("", ""))
    example = example or _field_example(at, data, root)
    return f"{subject} needs {name!r}" + (f" ({why})" if why else "") + (f", e.g. {example}" if example else "")


def _model_rule(text: str, at: DataPath, data: dict[str, Any]) -> _Explained:
    """Point a whole-model rule of models.py at the value it is about."""
    phases: list[Any] = data.get("phases") or []
    if at:  # a rule of one phase, like "turn must be longer than 0s"
        first_word = text.split(" ", 1)[0]
        return f"{_where(at, data)}: {text}", (*at, first_word), False
    if "last phase" in text:
        return f"{text}; end 'phases' with '- kind: close'", ("phases", len(phases) - 1, "kind"), False
    if "one close" in text:
        first = next(i for i, p in enumerate(phases) if p.get("kind") == "close")
        return f"{text}; phase {first + 1} is a close too", ("phases", first, "kind"), False
    if not (match := re.match(r"phase (\d+) ", text)):
        return text, (), False
    index = int(match.group(1)) - 1
    phase: dict[str, Any] = phases[index]
    if role := re.search(r"names role '([^']*)'", text):
        declared = [str(r.get("name")) for r in data.get("roles") or []]
        close = difflib.get_close_matches(role.group(1), declared, n=1)
        text += f"; did you mean {close[0]!r}?" if close else "; add it there or fix the name"
        for key in ("speakers", "silent"):
            if role.group(1) in (phase.get(key) or []):
                return text, ("phases", index, key, phase[key].index(role.group(1))), False
    if seconds := re.search(r"reminder (\d+)s", text):
        for j, item in enumerate(phase.get("remind_before") or []):
            with contextlib.suppress(DurationError):
                if parse_duration(item) == int(seconds.group(1)):
                    return text, ("phases", index, "remind_before", j), False
    return text, ("phases", index), False
