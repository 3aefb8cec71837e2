"""The script library: session scripts by name, parsed once, pinned by hash.

A running circle keeps the exact text of the script it was started from (stored with the
circle), so editing a file in sessions/ never changes a circle already under way, and a
resumed circle is rebuilt from its own stored text.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from facilitator.paths import sessions_root
from facilitator.script.loader import ScriptError, check_prompts, load_script_text, read_script_file
from facilitator.script.models import Script


@dataclass(frozen=True, slots=True)
class LoadedScript:
    """A script with the exact text it came from and that text's SHA-256."""

    name: str
    script: Script
    text: str
    sha256: str


class UnknownScript(ScriptError):
    """No script of that name in the library (said without a file position: there is no file)."""

    def __init__(self, name: str, known: list[str]) -> None:
        close = difflib.get_close_matches(name.lower(), known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        super().__init__(name, 1, 1, f"no script called {name!r}; {hint}choose one of: {', '.join(known)}")

    def __str__(self) -> str:
        return self.message


class ScriptLibrary:
    """Finds scripts in a directory (sessions/ by default) and caches them by hash."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or sessions_root()
        self._by_hash: dict[str, Script] = {}

    def names(self) -> list[str]:
        """The names of the scripts on offer (file stems of regular files), sorted."""
        return sorted(p.stem for p in self.root.glob("*.yaml") if p.is_file())

    def path_of(self, name: str) -> Path:
        """The file for script ``name`` in the library. Names only: a chat command can never
        reach a file outside the library (no paths, no ``..``)."""
        asked = name.strip()
        for ending in (".yaml", ".yml"):  # "start check-in-30.yaml" means the script, not a path
            asked = asked.removesuffix(ending)
        known = self.names()
        if asked not in known:  # "Check-In-30" is check-in-30
            asked = next((k for k in known if k.lower() == asked.lower()), asked)
        path = self.root / f"{asked}.yaml"
        # Something there that is not a regular file (a pipe, a folder) is named to the facilitator
        # by get(), which reads only regular files.
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,79}", asked) or not path.exists():
            raise UnknownScript(name[:80], known)
        return path

    def get(self, name: str) -> LoadedScript:
        """Load a script by name, checked against the prompt banks it names (raises
        :class:`ScriptError` with file:line:column, the same sentence ``facilitator check`` gives)."""
        path = self.path_of(name)
        text = read_script_file(path)
        script = self.parse(text, str(path))
        check_prompts(script, text, str(path))  # every time: banks can change while the script does not
        return LoadedScript(path.stem, script, text, _sha256(text))

    @classmethod
    def for_script(cls, name_or_path: str) -> tuple[ScriptLibrary, str]:
        """For the command line: a library and a name, from a name in sessions/ or a path to a file."""
        candidate = Path(name_or_path)
        if candidate.suffix in (".yaml", ".yml") and candidate.exists():  # get() says if it cannot be read
            return cls(candidate.resolve().parent), candidate.stem
        return cls(), name_or_path

    def parse(self, text: str, path: str = "<stored script>") -> Script:
        """Parse script text, reusing an earlier parse of the same text."""
        digest = _sha256(text)
        cached = self._by_hash.get(digest)
        if cached is None:
            cached = self._by_hash[digest] = load_script_text(text, path)
        return cached


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
