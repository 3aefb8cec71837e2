"""Exporting attendance: 1,000,000 rows to CSV against the sqlite3 command-line tool, and to XLSX.

The question (issue 5): how long does ``facilitator export --level attendance`` take to write
1,000,000 attendance rows as CSV, and how much memory at its peak, against the sqlite3
command-line tool dumping the same rows with ``.mode csv``, in the same run? Goals: **at most
1.5 times the sqlite3 tool's time** and **under 150 MB peak**. And the XLSX time for the same rows.

One run:

1. Builds a SQLite file database in a temp dir with the real schema (``Store(url)`` runs the
   migrations), then fills it with the ``sqlite3`` module (not counted): 36 groups on three
   platforms in nine time zones (Europe/London, America/New_York, Asia/Tokyo, Asia/Kathmandu at
   +5:45, ...; a few whose name or sector holds a comma or quotes, one named like a formula, one
   with no name), 20,000 members with display names (accents, about 1 % with a comma, a few
   hostile ones like ``=cmd|' /C calc'!A0``, some with none), ``rows // 10`` ended circles spread
   over two years, and exactly ``--rows`` attendance rows: 6 to 14 a circle, ~5 % anonymous (no
   member, ``anonymous`` set), each with its seat hash, joined and left times and turn counts.
2. On that one file, as subprocesses, wall time by ``time.perf_counter`` around each; CPU and
   peak RSS (``ru_maxrss``, the process's own) from ``wait4`` in GNU time (or a small Python
   launcher) between this process and the command:

   - **sqlite3**: ``sqlite3 -readonly DB .mode csv .headers on .once FILE "SELECT ..."``, the
     SELECT being ``attendance_query`` (what the export runs) compiled for SQLite with literal
     values: the same joins, columns, WHERE and ``ORDER BY attendance.id``.
   - **fetch**: the floor for any Python export: ``python -c`` reading that SELECT's rows with
     the ``sqlite3`` module, 5,000 at a time as the export does, and nothing else.
   - **startup**: ``facilitator export`` of a day no circle met (``--since 9000-01-01``): the command's imports
     and opening the database, what every export pays before its first row.
   - **CSV**: ``facilitator export --db sqlite:///DB --level attendance --out FILE.csv`` (stderr
     is not a terminal: no progress bar). Where there are two cores it shares the rows between
     two processes (facilitator/exports/parallel.py): its CPU seconds are both processes'.
   - **XLSX**: the same with ``--out FILE.xlsx``.

   Each but XLSX is run once first to warm the page cache (not counted), then ``--runs`` times
   in turn (sqlite3, fetch, startup, CSV, sqlite3, ...); the report gives the median (and the
   range). XLSX is slow (openpyxl), so it runs ``--xlsx-runs`` times (default 1) at the end.
   After the timed runs, the CSV export runs once more for its memory: every 10 ms the resident
   (RSS) and proportional (PSS, shared pages split between the processes sharing them) memory of
   the export's process and of its children are read from ``/proc/PID/smaps_rollup`` and
   summed; the peaks of both sums are reported. The goal is judged on the PSS sum, the memory
   the processes hold between them: the RSS sum counts each page a forked child shares with its
   parent (the imported code, most of it) once for every process.
3. Checks both CSVs hold a header and exactly ``--rows`` records with the same circle ids in the
   same order, that the fetch read ``--rows`` rows, and that the workbook holds a header and
   ``--rows`` rows.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import json
import os
import random
import re
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.dialects import sqlite as sqlite_dialect

from bench.report import fmt, git_commit, machine, write_section
from facilitator.exports.filters import ExportFilter, matching_groups
from facilitator.exports.levels import attendance_query
from facilitator.storage.store import Store

HEADING = "## Exporting attendance to CSV and XLSX (`bench/export_csv.py`)"
SECTION_BEGIN = "<!-- bench.export_csv:begin -->"
SECTION_END = "<!-- bench.export_csv:end -->"
GOAL_RATIO = 1.5
"""Our CSV export's time at most this many times the sqlite3 tool's."""
GOAL_PEAK_MB = 150.0
"""Our CSV export's peak resident memory, in MB (10^6 bytes)."""
SQLITE3 = shutil.which("sqlite3") or "/usr/bin/sqlite3"

_T0 = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- the database

ZONES = (
    "Europe/London",
    "America/New_York",
    "Asia/Tokyo",
    "Europe/Berlin",
    "America/Los_Angeles",
    "Australia/Sydney",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "UTC",
)
REGIONS = ("North West", "London", "Wales", "Scotland", "Ontario", "Kantō", "Île-de-France", "")
SECTORS = ("health", "education", "justice", "housing", None)
PLATFORMS = ("matrix", "discord", "console")
GROUP_NAMES = ("Tuesday peer support", "Night shift check-in", "Équipe soignante", "Reflective practice")
ODD_GROUPS = {
    5: ('The "Thursday" group', "North West", "faith, community"),
    11: ('=HYPERLINK("http://evil.example", "Team")', "London", "health"),
    17: (None, None, None),
    23: ("Carers' circle, ward 7", "Wales", "health"),
}
"""Groups whose name or sector a CSV must quote, or neutralise; one with no name (its room shows)."""
SCRIPTS = ("check-in-30", "peer-support-60", "reflective-practice-90", "grief-circle")
FIRST = ("Ada", "Bea", "Cy", "Dana", "Émile", "Fran", "Gökhan", "Hiro", "Inès", "Jo", "Kwame", "Łucja", "Mo", "Nia")
LAST = ("Smith", "O'Brien", "Nakamura", "Müller", "Okafor", "García", "Kowalski", "Singh", "Nguyen", "Brown")
HOSTILE = (
    "=cmd|' /C calc'!A0",
    "+cmd|' /C calc'!A0",
    '=HYPERLINK("http://evil.example", "Ada")',
    "@SUM(1,2)",
    "-2+3",
    "\t=1+1",
    'Sam "the Tram"',
    "Line\nbreak",
)
GROUPS = 36
MEMBERS = 20_000
YEARS_END = dt.datetime(2026, 11, 1, tzinfo=dt.UTC).timestamp()
SPAN = 2 * 365 * 86400.0


def _hex(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


def build(path: Path, rows: int, seed: int) -> dict[str, int]:
    """A database at ``path`` with the real schema and ``rows`` attendance rows; what it holds."""
    Store(f"sqlite:///{path}").close()  # the schema, by the migrations
    rng = random.Random(seed)
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous=OFF")
    with db:
        group_rows = []
        for i in range(GROUPS):
            platform = PLATFORMS[i % len(PLATFORMS)]
            room = f"!room{i}:example.org" if platform == "matrix" else str(1_000_000_000_000 + i)
            group_name, region, sector = ODD_GROUPS.get(
                i,
                (
                    f"{GROUP_NAMES[i % len(GROUP_NAMES)]} {i}",
                    REGIONS[i % len(REGIONS)] or None,
                    SECTORS[i % len(SECTORS)],
                ),
            )
            group_rows.append((i + 1, platform, room, group_name, region, sector, ZONES[i % len(ZONES)]))
        db.executemany(
            'INSERT INTO "group" (id, platform, room, name, region, sector, timezone) VALUES (?, ?, ?, ?, ?, ?, ?)',
            group_rows,
        )
        pools: list[list[int]] = [[] for _ in range(GROUPS)]
        member_rows = []
        for m in range(1, MEMBERS + 1):
            g = m % GROUPS
            pools[g].append(m)
            if m % 997 == 0:
                name: str | None = HOSTILE[(m // 997) % len(HOSTILE)]
            elif m % 101 == 0:
                name = None
            elif m % 89 == 0:
                name = f"{rng.choice(LAST)}, {rng.choice(FIRST)}"
            else:
                name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
            member_rows.append((m, f"{PLATFORMS[g % 3]}:user{m}", PLATFORMS[g % 3], name, YEARS_END - SPAN - 86400))
        db.executemany(
            "INSERT INTO member (id, key, platform, display_name, created_at) VALUES (?, ?, ?, ?, ?)", member_rows
        )
        hashes = {s: hashlib.sha256(s.encode()).hexdigest() for s in SCRIPTS}
        db.executemany(
            "INSERT INTO script (hash, name, text) VALUES (?, ?, ?)",
            [(h, s, f"name: {s}\n") for s, h in hashes.items()],
        )

        n_circles = max(1, rows // 10)
        sizes = [rng.randint(6, 14) for _ in range(n_circles)]
        diff = rows - sum(sizes)
        while diff:
            i = rng.randrange(n_circles)
            if diff > 0:
                sizes[i] += 1
                diff -= 1
            elif sizes[i] > 1:
                sizes[i] -= 1
                diff += 1
        starts = sorted(YEARS_END - SPAN + rng.random() * SPAN for _ in range(n_circles))
        circle_rows: list[tuple[Any, ...]] = []
        attendance_rows: list[tuple[Any, ...]] = []
        anonymous = 0
        insert_circle = (
            "INSERT INTO circle (id, group_id, script_name, title, script_hash, facilitator_id, status, "
            "opened_at, started_at, ended_at, updated_at, next_deadline, seat_salt, state_json) "
            "VALUES (?, ?, ?, ?, ?, ?, 'ended', ?, ?, ?, ?, NULL, NULL, '{}')"
        )
        insert_attendance = (
            "INSERT INTO attendance (circle_id, member_id, anonymous, seat, joined_at, left_at, "
            "turns_spoken, turns_passed) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        )
        for c, (size, started) in enumerate(zip(sizes, starts, strict=True)):
            g = rng.randrange(GROUPS)
            script = SCRIPTS[c % len(SCRIPTS)]
            ended = started + rng.uniform(25, 95) * 60
            cid = _hex(rng)
            pool = pools[g]
            people = rng.sample(pool, min(size, len(pool)))
            circle_rows.append(
                (
                    cid,
                    g + 1,
                    script,
                    f"{script} #{c}",
                    hashes[script],
                    people[0],
                    round(started - rng.uniform(60, 600), 3),
                    round(started, 3),
                    round(ended, 3),
                    round(ended, 3),
                )
            )
            for k in range(size):
                anon = rng.random() < 0.05
                anonymous += anon
                joined = started + rng.uniform(-120, 300)
                left = ended - rng.uniform(0, 900) if rng.random() < 0.2 else ended
                attendance_rows.append(
                    (
                        cid,
                        None if anon else people[k % len(people)],
                        int(anon),
                        _hex(rng),
                        round(joined, 3),
                        round(max(left, joined + 60), 3),
                        rng.randint(0, 4),
                        rng.randint(0, 2),
                    )
                )
            if len(attendance_rows) >= 100_000:
                db.executemany(insert_circle, circle_rows)
                db.executemany(insert_attendance, attendance_rows)
                circle_rows.clear()
                attendance_rows.clear()
        db.executemany(insert_circle, circle_rows)
        db.executemany(insert_attendance, attendance_rows)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    (count,) = db.execute("SELECT count(*) FROM attendance").fetchone()
    db.close()
    assert count == rows, f"built {count} attendance rows, not {rows}"
    return {"groups": GROUPS, "members": MEMBERS, "circles": n_circles, "attendance": rows, "anonymous": anonymous}


def the_query(path: Path) -> str:
    """The export's own SELECT for every group, as SQLite text with the values written in."""
    store = Store(f"sqlite:///{path}")
    try:
        with store.engine.connect() as conn:
            found = matching_groups(conn, ExportFilter())
    finally:
        store.close()
    query = attendance_query(found, ExportFilter())
    return str(query.compile(dialect=sqlite_dialect.dialect(), compile_kwargs={"literal_binds": True}))


# ---------------------------------------------------------------------------- measuring


@dataclass
class Run:
    """One child process: wall seconds, CPU seconds (user + system), peak resident memory."""

    seconds: float
    cpu: float
    peak_kb: int


FETCH_ONLY = """
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
with open(sys.argv[2], encoding="utf-8") as query:
    cursor = db.execute(query.read())
count = 0
while rows := cursor.fetchmany(5000):
    count += len(rows)
print(count)
"""
"""The floor for any Python export: the same query's rows read with the sqlite3 module, 5,000 at a
time as the export reads them, and nothing else (no SQLAlchemy, nothing formatted or written)."""
GNU_TIME = "/usr/bin/time"
LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as report:
    report.write(f"{usage.ru_utime} {usage.ru_stime} {usage.ru_maxrss}")
sys.exit(os.waitstatus_to_exitcode(status))
"""
"""Used when there is no GNU time: a small process that runs the command and reports its rusage."""


def measured(argv: list[str], log_path: Path) -> Run:
    """Run ``argv``; its wall time, CPU and peak RSS. The peak comes from ``wait4`` in a small
    process between this one and the command (GNU time, else :data:`LAUNCHER`): a child's
    ``ru_maxrss`` starts at its parent's size when it was forked (Linux keeps the high-water
    mark across exec), so this big process cannot be the command's parent."""
    report = log_path.with_suffix(".rusage")
    if os.path.exists(GNU_TIME):
        wrapped = [GNU_TIME, "-f", "%U %S %M", "-o", str(report), *argv]
    else:
        wrapped = [sys.executable, "-S", "-c", LAUNCHER, str(report), *argv]
    with open(log_path, "wb") as err:
        started = time.perf_counter()
        code = subprocess.run(wrapped, stdin=subprocess.DEVNULL, stdout=err, stderr=err, check=False).returncode
        seconds = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"{shlex.join(argv)} exited {code}: {log_path.read_text()[-2000:]}")
    user, system, peak = report.read_text().split()[-3:]
    return Run(seconds, float(user) + float(system), int(peak))


@dataclass(frozen=True)
class Together:
    """Peak memory of a command and its children, summed (kB), and how many processes there were."""

    rss_kb: int
    pss_kb: int
    processes: int


def _family(pid: int) -> list[int]:
    """``pid`` and every process descended from it (from ``/proc/PID/task/TID/children``)."""
    found, index = [pid], 0
    while index < len(found):
        current = found[index]
        index += 1
        try:
            for tid in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{tid}/children", encoding="ascii") as children:
                    found += [int(p) for p in children.read().split()]
        except OSError:
            continue  # it ended meanwhile
    return found


def _memory(pid: int) -> tuple[int, int]:
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as rollup:
            for line in rollup:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass  # it ended meanwhile
    return rss, pss


def tree_peak(argv: list[str]) -> Together:
    """Run ``argv`` (output discarded), reading its family's memory every 10 ms: the peak sums."""
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rss_peak = pss_peak = most = 0
    while process.poll() is None:
        family = _family(process.pid)
        sizes = [_memory(p) for p in family]
        rss_peak = max(rss_peak, sum(r for r, _ in sizes))
        pss_peak = max(pss_peak, sum(p for _, p in sizes))
        most = max(most, sum(1 for r, _ in sizes if r))
        time.sleep(0.01)
    if process.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} exited {process.returncode}")
    return Together(rss_peak, pss_peak, most)


def csv_ids(path: Path, encoding: str) -> Iterator[str]:
    """The first column of every record after the header."""
    with open(path, encoding=encoding, newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for record in reader:
            yield record[0]


def xlsx_rows(path: Path) -> int:
    """Rows in the workbook's one sheet (header included), counted in its XML without loading it."""
    count, tail = 0, b""
    with zipfile.ZipFile(path) as book:
        sheet = next(n for n in book.namelist() if n.startswith("xl/worksheets/sheet"))
        with book.open(sheet) as xml:
            while chunk := xml.read(1 << 20):
                data = tail + chunk
                count += len(re.findall(rb"<row[ >]", data))
                tail = data[-4:]  # shorter than a match: none is counted twice, none is cut in two
    return count


def _mb(kb: int) -> float:
    return kb * 1024 / 1e6


def _figures(runs: list[Run], rows: int) -> dict[str, Any]:
    seconds = [r.seconds for r in runs]
    median = statistics.median(seconds)
    return {
        "seconds": median,
        "min": min(seconds),
        "max": max(seconds),
        "all": seconds,
        "rows_per_s": rows / median,
        "cpu": statistics.median(r.cpu for r in runs),
        "peak_mb": max(_mb(r.peak_kb) for r in runs),
    }


def measure(opts: Options, base: Path) -> dict[str, Any]:
    db = base / "attendance.db"
    log(f"building {opts.rows:,} attendance rows in {db}")
    started = time.perf_counter()
    held = build(db, opts.rows, opts.seed)
    build_seconds = time.perf_counter() - started
    log(f"built in {build_seconds:.1f} s ({os.path.getsize(db) / 1e6:,.0f} MB): {held}")
    sql = the_query(db)
    ours = base / "ours.csv"
    theirs = base / "sqlite3.csv"
    book = base / "ours.xlsx"
    tool = [SQLITE3, "-readonly", str(db), ".mode csv", ".headers on", f".once {theirs}", sql]
    query_file = base / "query.sql"
    query_file.write_text(sql, encoding="utf-8")
    exe = Path(sys.executable).parent / "facilitator"
    cli = [str(exe)] if exe.exists() else [sys.executable, "-m", "facilitator.cli"]
    export = [*cli, "export", "--db", f"sqlite:///{db}", "--level", "attendance", "--out"]
    jobs = {
        "sqlite3": tool,
        "fetch": [sys.executable, "-c", FETCH_ONLY, str(db), str(query_file)],
        "startup": [*cli, "export", "--db", f"sqlite:///{db}", "--since", "9000-01-01", "--out", str(base / "0.csv")],
        "csv": [*export, str(ours)],
        "xlsx": [*export, str(book)],
    }
    timed = ("sqlite3", "fetch", "startup", "csv")
    runs: dict[str, list[Run]] = {name: [] for name in jobs}
    log(f"warming up: {', '.join(timed)} once each (not counted)")
    for name in timed:
        measured(jobs[name], base / f"{name}.log")
    for i in range(opts.runs):
        for name in timed:
            run = measured(jobs[name], base / f"{name}.log")
            runs[name].append(run)
            log(f"run {i + 1}/{opts.runs} {name}: {run.seconds:.2f} s, peak {_mb(run.peak_kb):.1f} MB")
    log("the CSV export once more, for its memory (all its processes, sampled every 10 ms)")
    together = tree_peak(jobs["csv"])
    log(
        f"peak of all its processes: RSS {_mb(together.rss_kb):.1f} MB, PSS {_mb(together.pss_kb):.1f} MB, "
        f"{together.processes} processes"
    )
    fetched = int((base / "fetch.log").read_text().split()[0])
    assert fetched == opts.rows, f"Python's sqlite3 read {fetched} rows, not {opts.rows}"
    sizes = {"sqlite3": os.path.getsize(theirs), "csv": os.path.getsize(ours)}
    log("checking the two CSVs")
    ids_theirs = list(csv_ids(theirs, "utf-8"))
    ids_ours = list(csv_ids(ours, "utf-8-sig"))
    assert len(ids_theirs) == opts.rows, f"sqlite3 wrote {len(ids_theirs)} records, not {opts.rows}"
    assert len(ids_ours) == opts.rows, f"the export wrote {len(ids_ours)} records, not {opts.rows}"
    assert ids_ours == ids_theirs, "the two CSVs differ in their circles or their order"
    del ids_theirs, ids_ours
    for i in range(opts.xlsx_runs):
        run = measured(jobs["xlsx"], base / "xlsx.log")
        runs["xlsx"].append(run)
        log(f"run {i + 1}/{opts.xlsx_runs} xlsx: {run.seconds:.2f} s, peak {_mb(run.peak_kb):.1f} MB")
    if opts.xlsx_runs:
        sizes["xlsx"] = os.path.getsize(book)
        counted = xlsx_rows(book)
        assert counted == opts.rows + 1, f"the workbook holds {counted} rows, not {opts.rows} + the header"
    figures = {name: _figures(r, opts.rows) for name, r in runs.items() if r}
    figures["csv"].update(
        tree_rss_mb=_mb(together.rss_kb), tree_pss_mb=_mb(together.pss_kb), processes=together.processes
    )
    for name, size in sizes.items():
        figures[name]["file_mb"] = size / 1e6
    ratio = figures["csv"]["seconds"] / figures["sqlite3"]["seconds"]
    return {
        "rows": opts.rows,
        "held": held,
        "build_seconds": build_seconds,
        "db_mb": os.path.getsize(db) / 1e6,
        "figures": figures,
        "ratio": ratio,
        "checked": True,
        "runs": opts.runs,
        "xlsx_runs": opts.xlsx_runs,
        "sql": sql,
    }


# ---------------------------------------------------------------------------- the report


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


COLUMNS = {
    "sqlite3": "sqlite3 tool, `.mode csv`",
    "fetch": "Python `sqlite3`: rows read, nothing written",
    "startup": "`facilitator export` of no rows (start-up)",
    "csv": "**`facilitator export`, CSV**",
    "xlsx": "`facilitator export`, XLSX",
}


def render_table(result: dict[str, Any]) -> str:
    f = result["figures"]
    names = [n for n in COLUMNS if n in f]
    runs = {n: result["xlsx_runs"] if n == "xlsx" else result["runs"] for n in names}

    def secs(n: str) -> str:
        r = f[n]
        spread = f" ({fmt(r['min'], 2)}–{fmt(r['max'], 2)})" if runs[n] > 1 else ""
        return f"{fmt(r['seconds'], 2)}{spread}"

    rows = [
        ("Seconds, median of the timed runs (min–max)", "", {n: secs(n) for n in names}),
        ("Timed runs (after a warm-up run of each but XLSX)", "", {n: str(runs[n]) for n in names}),
        ("Rows per second", "", {n: "" if n == "startup" else fmt(f[n]["rows_per_s"], 0) for n in names}),
        (
            "**Time against the sqlite3 tool**",
            f"≤ {GOAL_RATIO:g}×",
            {n: f"{f[n]['seconds'] / f['sqlite3']['seconds']:.2f}×" for n in names},
        ),
        ("Peak resident memory (MB, the largest single process)", "", {n: fmt(f[n]["peak_mb"]) for n in names}),
        (
            "**Peak memory of all its processes together** (MB, PSS summed: a shared page counted once;"
            " one more run, sampled)",
            f"< {GOAL_PEAK_MB:g}",
            {n: fmt(f[n]["tree_pss_mb"]) if "tree_pss_mb" in f[n] else "" for n in names},
        ),
        (
            "The same as RSS summed (each process counts the pages it shares with the others)",
            "",
            {n: fmt(f[n]["tree_rss_mb"]) if "tree_rss_mb" in f[n] else "" for n in names},
        ),
        ("Processes at once", "", {n: str(f[n]["processes"]) if "processes" in f[n] else "1" for n in names}),
        ("CPU seconds (user + system, median)", "", {n: fmt(f[n]["cpu"], 2) for n in names}),
        ("File (MB)", "", {n: fmt(f[n]["file_mb"], 1) if "file_mb" in f[n] else "" for n in names}),
    ]
    lines = ["| Metric | Goal (CSV) | " + " | ".join(COLUMNS[n] for n in names) + " |", "|" + "---|" * (2 + len(names))]
    for metric, goal, values in rows:
        lines.append(f"| {metric} | {goal} | " + " | ".join(values[n] for n in names) + " |")
    return "\n".join(lines)


def verdict_line(result: dict[str, Any]) -> str:
    f = result["figures"]
    csv_, tool = f["csv"], f["sqlite3"]
    one = f["startup"]["seconds"] + f["fetch"]["seconds"]
    return (
        f"Goals for {result['rows']:,} rows to CSV: at most {GOAL_RATIO:g}× the sqlite3 tool's time — "
        f"{_verdict(result['ratio'] <= GOAL_RATIO)} ({result['ratio']:.2f}×: {fmt(csv_['seconds'], 2)} s against "
        f"{fmt(tool['seconds'], 2)} s); under {GOAL_PEAK_MB:g} MB at the peak — "
        f"{_verdict(csv_['tree_pss_mb'] < GOAL_PEAK_MB)} ({fmt(csv_['tree_pss_mb'])} MB for its "
        f"{csv_['processes']} processes together; {fmt(csv_['tree_rss_mb'])} MB if each counted the pages they "
        "share). "
        f"The export ran as {csv_['processes']} processes: {fmt(csv_['cpu'], 2)} CPU seconds "
        f"in all against the tool's {fmt(tool['cpu'], 2)}. One Python process only starting and reading the "
        f"rows, nothing done to them, would take {fmt(one, 2)} s, {one / tool['seconds']:.2f}× the tool."
    )


def render_section(result: dict[str, Any]) -> str:
    m = result["machine"]
    held = result["held"]
    out = [
        SECTION_BEGIN,
        "",
        "Generated by `bench/export_csv.py` (a run replaces everything between the markers).",
        "",
        f"- **Code at `{result['commit']}`** — {result['date']}: `{result['command']}`  ",
        f"  {m['nproc']} × {m['cpu']}, {m['ram']} RAM, {m['os']}; Python {m['python']}, "
        f"SQLAlchemy {m['sqlalchemy']}, openpyxl {m['openpyxl']}, SQLite {m['sqlite']} (module) / "
        f"{m['sqlite3_tool']} (tool); {fmt(result['run_seconds'], 0)} s in all.",
        f"- The database: {held['groups']} groups, {held['members']:,} members, {held['circles']:,} circles, "
        f"{held['attendance']:,} attendance rows ({held['anonymous']:,} anonymous); "
        f"{fmt(result['db_mb'], 0)} MB, built in {fmt(result['build_seconds'], 0)} s (not counted). "
        f"Both CSVs checked: a header and {result['rows']:,} records each, the same circles in the same order; "
        + (f"the workbook: a header and {result['rows']:,} rows." if result["xlsx_runs"] else "no XLSX run."),
        "",
        render_table(result),
        "",
        verdict_line(result),
        "",
        SECTION_END,
    ]
    return "\n".join(out)


def write_report(path: Path, result: dict[str, Any]) -> None:
    """Replace the generated part of this benchmark's section in ``path`` (added at the end if new)."""
    write_section(path, HEADING, SECTION_BEGIN, SECTION_END, render_section(result))


# ---------------------------------------------------------------------------- main


@dataclass
class Options:
    rows: int
    runs: int
    xlsx_runs: int
    seed: int
    keep: bool
    out: Path | None
    json_out: Path | None
    command: str


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.export_csv", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="attendance rows (default 1000000)")
    parser.add_argument("--runs", type=int, default=7, help="timed runs of each but XLSX (default 7)")
    parser.add_argument("--xlsx-runs", type=int, default=1, help="timed runs of the XLSX export (default 1; 0: none)")
    parser.add_argument("--seed", type=int, default=5, help="the data's random seed (default 5)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (the database and the files)")
    parser.add_argument("--out", type=Path, default=None, help="Markdown file to write the figures into")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.runs < 1 or args.xlsx_runs < 0:
        parser.error("--rows and --runs must be at least 1, --xlsx-runs at least 0")
    command = "python -m bench.export_csv " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    return Options(args.rows, args.runs, args.xlsx_runs, args.seed, args.keep, args.out, args.json, command.strip())


def _tool_version() -> str:
    try:
        found = subprocess.run([SQLITE3, "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return found.split()[0] if found.split() else "unknown"


def main(argv: list[str] | None = None) -> None:
    opts = parse_args(argv)
    commit = git_commit()
    base = Path(tempfile.mkdtemp(prefix="bench-export-"))
    log(f"bench.export_csv: {opts.rows:,} rows, {opts.runs} timed runs (+1 warm-up), {opts.xlsx_runs} XLSX")
    try:
        result = measure(opts, base)
    finally:
        if opts.keep:
            log(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    result.update(
        commit=commit,
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        command=opts.command,
        machine={
            **machine(sqlalchemy="sqlalchemy", openpyxl="openpyxl"),
            "sqlite": sqlite3.sqlite_version,
            "sqlite3_tool": _tool_version(),
        },
        run_seconds=time.perf_counter() - _T0,
    )
    print()
    print(render_table(result))
    print()
    print(verdict_line(result))
    if opts.json_out is not None:
        opts.json_out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    if opts.out is not None:
        write_report(opts.out, result)
        log(f"wrote {opts.out}")


if __name__ == "__main__":
    main()
