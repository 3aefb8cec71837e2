"""``facilitator check`` and ``facilitator schema``: validate scripts, publish their schema.

:func:`check_paths` loads each script and prints its timeline, or its one-line error
(``path:line:column: message``) so editors and CI can jump to it. :func:`schema_json`
gives the JSON Schema that editors can use to complete and check scripts as they are typed.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from facilitator.script.durations import format_duration
from facilitator.script.loader import ScriptError, load_script
from facilitator.script.models import Script
from facilitator.script.timeline import format_timeline, timeline

__all__ = ["SCHEMA_DIALECT", "check_paths", "schema_json"]

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_SUFFIXES = ("*.yaml", "*.yml")


def check_paths(paths: Sequence[str], out: TextIO, err: TextIO) -> int:
    """Check every script in ``paths`` (a directory means its YAML files).

    Prints ``ok  PATH  (title, N phases, about X total)`` and the timeline to ``out`` for
    each good script and the one-line error to ``err`` for each bad one. Returns 0 when
    all are good, 1 when any is not or when there was nothing to check.
    """
    failed = False
    checked = 0
    for given in paths:
        files = _script_files(Path(given))
        if not files:
            print(f"{given}: no *.yaml scripts in this directory", file=err)
            failed = True
        for file in files:
            checked += 1
            try:
                script = load_script(file)
            except ScriptError as error:
                print(error, file=err)
                failed = True
                continue
            print(_summary(script, str(file)), file=out)
            print(textwrap.indent(format_timeline(script), "    "), file=out)
            print(file=out)
    if checked == 0 and not failed:
        print("no scripts to check: give one or more .yaml files or directories", file=err)
        return 1
    return 1 if failed else 0


def _script_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted({file for pattern in _SUFFIXES for file in path.glob(pattern) if file.is_file()})
    return [path]  # a missing file is reported by load_script, as path:1:1


def _summary(script: Script, path: str) -> str:
    total = sum(row.length for row in timeline(script))
    count = len(script.phases)
    phases = f"{count} phase" + ("" if count == 1 else "s")
    return f"ok  {path}  ({script.title}, {phases}, about {format_duration(total)} total)"


def schema_json() -> str:
    """The JSON Schema (draft 2020-12) of a session script, pretty-printed."""
    schema = Script.model_json_schema()
    schema.pop("title", None)
    document = {"$schema": SCHEMA_DIALECT, "title": "Facilitator session script", **schema}
    return json.dumps(document, indent=2, ensure_ascii=False)
