"""Prompt banks and how a group's prompts rotate.

A bank is one YAML file in ``prompts/banks/`` (``check-in.yaml``, ``reflect.yaml``, ...): a
title, a description and a list of prompts, each an open question with a stable ``id``. An id
is never reused for a different question, because a group's history of used prompts is kept
as ids and must keep meaning the same thing after the bank is edited.

Rotation is a pure function of the bank, the group's history and an optional seed, so the
runtime can replay it after a restart and tests can check it without a clock:

- a group does not get the same prompt again until it has had every prompt in the bank (one
  *cycle*);
- when a new cycle starts, its first prompt is never the one the group heard last, so no
  prompt comes twice in a row across the cycle boundary;
- ids in the history that the bank no longer holds are ignored, so removing a prompt from a
  bank never breaks a group.

The bank directory is the project's ``prompts/`` folder unless ``FACILITATOR_PROMPTS_DIR``
points elsewhere (a deployment with its own banks).
"""

from __future__ import annotations

import difflib
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from facilitator.paths import prompts_root
from facilitator.script.files import UnreadableFile, read_text_file

__all__ = [
    "PROMPTS_DIR_ENV",
    "BankError",
    "PromptBank",
    "PromptItem",
    "bank_names",
    "bank_path",
    "choose_prompt",
    "clear_cache",
    "find_bank",
    "load_bank",
    "load_banks",
    "prompts_dir",
    "resolve_prompt",
]

PROMPTS_DIR_ENV = "FACILITATOR_PROMPTS_DIR"
"""Environment variable naming a prompts directory to use instead of the project's own."""

PromptId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)]
BankName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)]


class BankError(ValueError):
    """A bank that is missing or cannot be read; the message names the file."""


class PromptItem(BaseModel):
    """One prompt: a single open question with an id that never changes meaning."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: PromptId
    text: Annotated[str, Field(min_length=1, max_length=500)]


class PromptBank(BaseModel):
    """A named collection of prompts, as in ``prompts/banks/<bank>.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bank: BankName
    title: Annotated[str, Field(min_length=1, max_length=80)]
    description: Annotated[str, Field(min_length=1, max_length=1000)]
    prompts: Annotated[list[PromptItem], Field(min_length=1)]

    @field_validator("prompts")
    @classmethod
    def _ids_unique(cls, prompts: list[PromptItem]) -> list[PromptItem]:
        seen: set[str] = set()
        for item in prompts:
            if item.id in seen:
                raise ValueError(f"prompt id {item.id!r} appears more than once; ids must be unique")
            seen.add(item.id)
        return prompts

    @property
    def ids(self) -> list[str]:
        """The prompt ids, in bank order."""
        return [item.id for item in self.prompts]

    def get(self, prompt_id: str) -> PromptItem:
        """Return the prompt with ``prompt_id``, or raise :class:`KeyError` saying which bank."""
        for item in self.prompts:
            if item.id == prompt_id:
                return item
        raise KeyError(f"bank {self.bank!r} has no prompt {prompt_id!r}")


def prompts_dir() -> Path:
    """Return the prompts directory: ``$FACILITATOR_PROMPTS_DIR`` if set, else the project's.

    The same place :mod:`facilitator.voice` reads the bot's words from; the rule lives in
    :func:`facilitator.paths.prompts_root` so the two can never disagree.
    """
    return prompts_root()


def _banks_dir(directory: Path | None) -> Path:
    """The folder that holds the bank files: ``directory`` or ``prompts_dir()/banks``."""
    return Path(directory) if directory is not None else prompts_dir() / "banks"


def bank_path(name: str, directory: Path | None = None) -> Path:
    """Return the path of bank ``name``'s file (it may not exist)."""
    return _banks_dir(directory) / f"{name}.yaml"


def _describe(error: ValidationError) -> str:
    """Turn pydantic's errors into short lines that say where in the file the problem is."""
    lines = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        lines.append(f"  {where}: {problem['msg']}")
    return "\n".join(lines)


def _read_bank(path: Path) -> PromptBank:
    """Read and validate one bank file; every failure is a :class:`BankError` naming ``path``."""
    try:
        raw: Any = yaml.safe_load(read_text_file(path, what="prompt bank"))
    except UnreadableFile as exc:  # never a pipe or device opened, never bytes that are not UTF-8
        raise BankError(f"{path}:{exc.line}:{exc.column}: cannot read prompt bank: {exc.message}") from exc
    except yaml.YAMLError as exc:
        raise BankError(f"{path}: not valid YAML:\n{exc}") from exc
    if not isinstance(raw, dict):
        raise BankError(f"{path}: a prompt bank is a mapping with bank, title, description and prompts")
    try:
        bank = PromptBank.model_validate(raw)
    except ValidationError as exc:
        raise BankError(f"{path}: not a valid prompt bank:\n{_describe(exc)}") from exc
    if bank.bank != path.stem:
        raise BankError(f"{path}: 'bank: {bank.bank}' must equal the file name, 'bank: {path.stem}'")
    return bank


_Signature = tuple[tuple[str, int, int], ...]
_cache: dict[Path, tuple[_Signature, dict[str, PromptBank]]] = {}


def _signature(folder: Path) -> _Signature:
    """What the folder holds right now (name, size, mtime), so an edited bank is reloaded."""
    entries = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            stat = path.stat()
        except OSError:  # gone, or a broken link: reading it says what is wrong
            entries.append((path.name, -1, -1))
            continue
        entries.append((path.name, stat.st_size, stat.st_mtime_ns))
    return tuple(entries)


def bank_names(directory: Path | None = None) -> list[str]:
    """The names of the banks in ``directory`` (default ``prompts_dir()/banks``), sorted."""
    folder = _banks_dir(directory)
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def load_banks(directory: Path | None = None) -> dict[str, PromptBank]:
    """Load every bank in ``directory`` (default ``prompts_dir()/banks``), keyed by bank name.

    The result is cached per directory and re-read when a file there is added, removed or
    changed. Treat the returned mapping as read-only.
    """
    folder = _banks_dir(directory)
    if not folder.is_dir():
        raise BankError(f"{folder}: no prompt bank directory here (set {PROMPTS_DIR_ENV} to choose one)")
    key = folder.resolve()
    signature = _signature(folder)
    cached = _cache.get(key)
    if cached is not None and cached[0] == signature:
        return cached[1]
    banks = {path.stem: _read_bank(path) for path in sorted(folder.glob("*.yaml"))}
    _cache[key] = (signature, banks)
    return banks


def load_bank(name: str, directory: Path | None = None) -> PromptBank:
    """Load bank ``name`` from ``directory`` (default ``prompts_dir()/banks``).

    A missing bank raises :class:`BankError` naming the file it looked for and the nearest
    bank names; an invalid one names the file and the key that is wrong.
    """
    path = bank_path(name, directory)
    if not path.exists():
        known = bank_names(directory)
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        listing = f" (banks here: {', '.join(known)})" if known else ""
        raise BankError(f"{path}: no prompt bank {name!r}{hint}{listing}")
    return _read_bank(path)


def find_bank(name: str, directory: Path | None = None) -> PromptBank:
    """Bank ``name``, from the cached directory when every bank there reads, else from its own file.

    So one broken bank file never stops a circle that draws from another bank.
    """
    try:
        banks = load_banks(directory)
    except BankError:
        banks = {}
    return banks[name] if name in banks else load_bank(name, directory)


def clear_cache() -> None:
    """Forget every cached bank directory (for tests and long-running processes)."""
    _cache.clear()


def _current_cycle(bank_ids: Sequence[str], history: Sequence[str]) -> tuple[int, set[str], str | None]:
    """Walk ``history`` and return (cycles completed, ids used in the current cycle, last id used).

    Unknown ids are skipped. A cycle closes the moment every id in the bank has been used,
    and the next id starts a fresh one.
    """
    known = set(bank_ids)
    completed = 0
    used: set[str] = set()
    last: str | None = None
    for prompt_id in history:
        if prompt_id not in known:
            continue
        used.add(prompt_id)
        last = prompt_id
        if used == known:
            completed += 1
            used = set()
    return completed, used, last


def choose_prompt(bank: PromptBank, history: Sequence[str], rng_seed: int | None = None) -> PromptItem:
    """Choose the next prompt from ``bank`` for a group whose used ids are ``history``.

    ``history`` is this group's used prompt ids for this bank, oldest first. The choice is
    among the prompts not yet used in the current cycle; with ``rng_seed=None`` it is the
    first of them in bank order, otherwise it follows an order shuffled from the seed (a new
    shuffle each cycle), so the same seed and history always give the same prompt. At the
    start of a new cycle the last prompt used is left out, if the bank has another.
    """
    ids = bank.ids
    cycle, used, last = _current_cycle(ids, history)
    if rng_seed is not None:
        random.Random(f"{rng_seed}:{cycle}").shuffle(ids)
    candidates = [prompt_id for prompt_id in ids if prompt_id not in used]
    if not used and last is not None and len(candidates) > 1:
        candidates = [prompt_id for prompt_id in candidates if prompt_id != last]
    return bank.get(candidates[0])


def resolve_prompt(
    bank_name: str,
    prompt_id: str | None = None,
    history: Sequence[str] = (),
    rng_seed: int | None = None,
    directory: Path | None = None,
) -> PromptItem:
    """Return the prompt a script's ``{bank: NAME}`` or ``{bank: NAME, id: ID}`` stands for.

    A pinned ``prompt_id`` is returned as is (:class:`BankError` if the bank lacks it);
    otherwise the next prompt is chosen with :func:`choose_prompt`.
    """
    bank = find_bank(bank_name, directory)
    if prompt_id is None:
        return choose_prompt(bank, history, rng_seed)
    try:
        return bank.get(prompt_id)
    except KeyError as exc:
        raise BankError(f"{bank_path(bank_name, directory)}: bank {bank_name!r} has no prompt {prompt_id!r}") from exc
