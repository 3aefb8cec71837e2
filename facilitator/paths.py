"""Where the project's data lives: sessions/ and prompts/ beside the package.

Both can be moved with environment variables (``FACILITATOR_SESSIONS_DIR``,
``FACILITATOR_PROMPTS_DIR``), so a deployment can keep its own scripts and words.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def prompts_root() -> Path:
    """The prompts/ directory (prompt banks and the bot's words)."""
    return Path(os.environ.get("FACILITATOR_PROMPTS_DIR") or PROJECT_ROOT / "prompts")


def sessions_root() -> Path:
    """The sessions/ directory (ready session scripts)."""
    return Path(os.environ.get("FACILITATOR_SESSIONS_DIR") or PROJECT_ROOT / "sessions")
