"""What the latency benchmarks share: percentiles, the machine and the code a run measured, and
replacing a benchmark's own generated part of docs/benchmarks.md."""

from __future__ import annotations

import contextlib
import importlib.metadata
import math
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def pct(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile, linear between closest ranks (as numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float]) -> dict[str, float]:
    """n, p50, p95, p99, max and mean of ``values``."""
    return {
        "n": float(len(values)),
        "p50": pct(values, 50),
        "p95": pct(values, 95),
        "p99": pct(values, 99),
        "max": max(values) if values else math.nan,
        "mean": sum(values) / len(values) if values else math.nan,
    }


def machine(**packages: str) -> dict[str, str]:
    """What this ran on; each keyword names a distribution whose version is added under that key
    (``machine(nio="matrix-nio")``)."""
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    ram = "unknown"
    with contextlib.suppress(OSError), open("/proc/meminfo", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                break
    found = {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "ram": ram,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }
    for key, distribution in packages.items():
        found[key] = importlib.metadata.version(distribution)
    return found


def git_commit(*, last_code_change: bool = False) -> str:
    """HEAD (or, with ``last_code_change``, the last commit that changed facilitator/ or adapters/),
    with ``+changes`` if the code measured differs from it."""
    ask = (
        ["git", "log", "-1", "--format=%h", "--", "facilitator", "adapters"]
        if last_code_change
        else ["git", "rev-parse", "--short", "HEAD"]
    )
    try:
        head = subprocess.run(ask, cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", "facilitator", "adapters"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+changes" if changed else "")


def fmt(value: float | None, digits: int = 1) -> str:
    """``value`` with thousands separators and ``digits`` decimals, or n/a."""
    return "n/a" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def write_section(path: Path, heading: str, begin: str, end: str, section: str) -> None:
    """Put ``section`` (which starts with ``begin`` and ends with ``end``) in ``path`` in place of
    what is between those markers, or at the end under ``heading`` if they are not there yet."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + section + tail
    else:
        text = text.rstrip("\n") + f"\n\n{heading}\n\n{section}\n"
    path.write_text(text, encoding="utf-8")
