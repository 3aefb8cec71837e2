"""The ``facilitator`` command: check and run session scripts, in a terminal or as a bot.

- ``facilitator check PATH...``: validate scripts and print each one's timeline.
- ``facilitator schema``: a JSON Schema for scripts, for editors.
- ``facilitator demo``: a whole circle with simulated participants.
- ``facilitator console``: type as the facilitator and as participants.
- ``facilitator diagram``: the engine's transition table as a Mermaid diagram.
- ``facilitator serve --config FILE``: the bot on Matrix and Discord (see the README).
- ``facilitator export``: attendance as CSV, XLSX or JSON (coordinators: ``--config`` and ``--as``).
- ``facilitator consent-log``: the consent ledger, for an audit.
- ``facilitator report --out FILE.png``: attendance per month by group or region, a chart and a table.

The database is ``--db`` or ``FACILITATOR_DATABASE_URL`` (default: ``sqlite:///facilitator.db``).
"""

from __future__ import annotations

import os
import re
import stat
import sys
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, NoReturn, cast

import click

from facilitator.storage import DEFAULT_URL

if TYPE_CHECKING:
    from facilitator.exports.levels import Level
    from facilitator.exports.writers import Format
    from facilitator.storage.store import Store

# Each command imports what it needs when it runs: an export has no use for the circle engine's
# or the script checker's start-up (see docs/benchmarks.md, "export-csv").

DB_OPTION = click.option(
    "--db",
    "database_url",
    envvar="FACILITATOR_DATABASE_URL",
    default=DEFAULT_URL,
    show_default=True,
    help="Database URL (SQLite file or PostgreSQL).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="facilitator")
def main() -> None:
    """Keep time and care for reflective circles."""


@main.command()
@click.argument("paths", nargs=-1, required=True)
def check(paths: tuple[str, ...]) -> None:
    """Validate session scripts and print each one's timeline."""
    from facilitator.script.check import check_paths

    sys.exit(check_paths(paths, sys.stdout, sys.stderr))


@main.command()
def schema() -> None:
    """Print the JSON Schema of session scripts."""
    from facilitator.script.check import schema_json

    click.echo(schema_json())


@main.command()
def diagram() -> None:
    """Print the circle's states and transitions as a Mermaid diagram."""
    from facilitator.engine.circle import diagram as engine_diagram

    click.echo(engine_diagram())


@main.command()
@click.option("--script", default="check-in-30", show_default=True, help="Script name (in sessions/) or a path.")
@click.option("--participants", default=5, show_default=True, type=click.IntRange(1, 12))
@click.option(
    "--speed",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="How much faster than real time (60: a minute a second; 0: instantly).",
)
@click.option("--seed", default=7, show_default=True, help="Seed for the simulated participants.")
@DB_OPTION
def demo(script: str, participants: int, speed: float, seed: int, database_url: str) -> None:
    """Run a whole circle with simulated participants and print the transcript."""
    import asyncio

    from facilitator.demo import run_demo

    _usable_url("demo", database_url)
    result = asyncio.run(
        run_demo(
            sys.stdout,
            script=script,
            participants=participants,
            speed=speed,
            database_url=database_url,
            seed=seed,
        )
    )
    if not result.ended:
        sys.exit(1)
    click.echo(f"\nThe circle closed. Attendance and consent are in {database_url} (circle {result.circle_id}).")


@main.command()
@click.option("--as", "speaker", default="Facilitator", show_default=True, help="Who you type as at first.")
@click.option("--room", default="terminal", show_default=True, help="The room name (a group per room).")
@DB_OPTION
def console(speaker: str, room: str, database_url: str) -> None:
    """Run circles in this terminal: type commands as the facilitator and as participants."""
    import asyncio

    from adapters.console_session import run_console

    _usable_url("console", database_url)
    if not re.fullmatch(r"[^\W\d_][\w.-]{0,39}", speaker):
        _fail("console", f"--as {speaker!r}: a name starts with a letter (letters, digits, . _ -; up to 40)")
    asyncio.run(run_console(sys.stdin, sys.stdout, speaker=speaker, room=room, database_url=database_url))


@main.command()
@click.option("--config", "config_path", required=True, help="The serve configuration (YAML; see the README).")
@click.option("--db", "database_url", default=None, help="Database URL (overrides the config's 'database').")
@click.option("-v", "--verbose", is_flag=True, help="Log more (each join, invite and reconnect).")
def serve(config_path: str, database_url: str | None, verbose: bool) -> None:
    """Run the bot on the chat platforms the configuration names, until stopped."""
    import asyncio
    import logging

    from facilitator.config import ConfigError, load_config
    from facilitator.serve import database_url as choose_url
    from facilitator.serve import run_serve

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = load_config(config_path)
    except ConfigError as error:
        click.echo(f"facilitator serve: {error}", err=True)
        sys.exit(2)
    url = choose_url(config, database_url)
    _usable_url("serve", url)
    if database_url is None and config.database:
        _not_a_new_database_by_mistake(config_path, url)
    sys.exit(asyncio.run(run_serve(config, url)))


def _not_a_new_database_by_mistake(config_path: str, url: str) -> None:
    """A relative SQLite file in serve.yaml is next to serve.yaml (it was taken from the folder
    serve started in): if there is none there yet but there is one where serve used to look,
    stop rather than start an empty database beside the one with everyone's records."""
    from pathlib import Path

    from facilitator.storage.opening import sqlite_path

    path = sqlite_path(url)
    if path is None or os.path.exists(path):
        return
    try:
        relative = Path(path).relative_to(Path(config_path).resolve().parent)
    except ValueError:
        return
    old = Path.cwd() / relative
    if old.exists() and old.resolve() != Path(path).resolve():
        _fail(
            "serve",
            f"the configuration's database is now read next to it, at {path}, where there is none yet; "
            f"but there is one at {old}, where serve used to look: to keep using it, write its full path "
            f"(database: sqlite:///{old}) or move it next to {config_path}",
        )


def _usable_url(name: str, url: str) -> None:
    """Exit with a sentence if ``url`` is not a database URL we can use."""
    from facilitator.storage.opening import url_problem

    problem = url_problem(url)
    if problem is not None:
        _fail(name, problem)


def _filter_options(command: Any) -> Any:
    """The filters ``export`` and ``report`` share (each may be repeated or comma-separated)."""
    options = [
        click.option("--group", "groups", multiple=True, help="Only this group (by its configured name)."),
        click.option("--region", "regions", multiple=True, help="Only groups in this region."),
        click.option("--sector", "sectors", multiple=True, help="Only groups in this sector."),
        click.option("--platform", "platforms", multiple=True, help="Only this platform (matrix, discord, console)."),
        click.option("--script", "scripts", multiple=True, help="Only circles that ran this script."),
        click.option("--since", default=None, help="First date included (YYYY-MM-DD, in each group's time zone)."),
        click.option("--until", default=None, help="Last date included (YYYY-MM-DD, in each group's time zone)."),
        click.option("--config", "config_path", default=None, help="The serve configuration: coordinators, groups."),
        click.option(
            "--as", "who", default=None, help="Who you are (a coordinator in --config): @you:server or an id."
        ),
        DB_OPTION,
    ]
    for option in reversed(options):
        command = option(command)
    return command


@dataclass
class _Asked:
    """What the shared options of ``export`` and ``report`` ask for."""

    url: str
    config: Any
    """The serve configuration given with --config (a ServeConfig), or None."""
    who: str | None
    """The coordinator named with --as, as a member key."""


def _asked(name: str, opts: dict[str, Any]) -> _Asked:
    """The database and the coordinator the options name; exits with a sentence if they cannot be used."""
    url = opts["database_url"]
    config, who = None, None
    if opts["config_path"] is None:
        if opts["who"]:
            _fail(name, "--as needs --config: coordinators are named in the serve configuration")
    else:
        from facilitator.config import ConfigError, load_config, person_key
        from facilitator.exports.access import has_coordinators

        try:
            config = load_config(opts["config_path"])
        except ConfigError as error:
            _fail(name, str(error))
        # As serve chooses: --db, then the configuration's database, then the environment, then the default.
        given = click.get_current_context().get_parameter_source("database_url")
        if config.database and given is not click.core.ParameterSource.COMMANDLINE:
            url = config.database
        if not has_coordinators(config):
            if opts["who"]:
                _fail(
                    name, "this configuration names no coordinators, so --as cannot be checked: add them, or drop --as"
                )
        elif not opts["who"]:
            _fail(
                name,
                "this configuration names coordinators: say which one you are with --as (like --as @ana:example.org)",
            )
        else:
            try:
                who = str(person_key(opts["who"]))
            except ValueError as error:
                _fail(name, f"--as: {error}")
    _usable_url(name, url)
    return _Asked(url, config, who)


def _dates(name: str, since_text: str | None, until_text: str | None) -> tuple[date | None, date | None]:
    """``--since`` and ``--until`` as dates; exits with a sentence if they are not, or are the wrong way round."""
    from facilitator.exports.filters import parse_day

    for option, given in (("--since", since_text), ("--until", until_text)):
        if given is not None and not given.strip():
            _fail(name, f"{option} is empty: give a date (YYYY-MM-DD), or leave the option out")
    try:
        since = parse_day(since_text, "--since") if since_text else None
        until = parse_day(until_text, "--until") if until_text else None
    except ValueError as error:
        _fail(name, str(error))
    if since and until and since > until:
        _fail(name, f"--since {since} is after --until {until}: swap them")
    return since, until


def _wanted(name: str, opts: dict[str, Any], asked: _Asked, store: Store) -> Any:
    """The filter the shared options ask for, checked against what the database holds: a value
    that matches nothing here, or a group the coordinator may not export, exits with a sentence."""
    from dataclasses import replace

    from facilitator.exports.filters import FILTERED, ExportFilter, known_values, split_values, unknown_value

    since, until = _dates(name, opts["since"], opts["until"])
    with store.engine.connect() as conn:
        named = any(opts[f"{kind}s"] for kind in FILTERED)
        known = known_values(conn) if named else {kind: [] for kind in FILTERED}  # no scan when nothing is named
        chosen: dict[str, tuple[str, ...]] = {}
        for kind in FILTERED:
            raw = tuple(opts[f"{kind}s"])
            if any(not value.strip() for value in raw):
                _fail(name, f"--{kind} is empty: name a {kind}, or leave the option out")
            values = split_values(raw, known[kind])
            if kind == "platform":
                values = tuple(v.lower() for v in values)
            chosen[kind] = values
        wanted = ExportFilter(
            groups=chosen["group"],
            regions=chosen["region"],
            sectors=chosen["sector"],
            platforms=chosen["platform"],
            scripts=chosen["script"],
            since=since,
            until=until,
        )
        if asked.who is not None:
            # Only here: the configuration's modules are a tenth of a second no other export needs.
            from facilitator.exports.access import NotAllowed, allowed_group_ids, coordination

            try:
                ids = allowed_group_ids(conn, coordination(asked.config, asked.who), wanted.groups, wanted.regions)
            except NotAllowed as error:
                _fail(name, str(error))
            wanted = replace(wanted, group_ids=ids)
            if named:
                known = known_values(conn, ids)  # a coordinator is told only of their own groups' names
    for kind in FILTERED:
        for value in chosen[kind]:
            if value not in known[kind]:
                _fail(name, unknown_value(kind, value, known[kind]))
    return wanted


def _incomplete(out_path: str | None) -> str:
    """What became of an export's output when the export failed, and what to do."""
    import os

    if out_path is None:
        return "What was written above is incomplete: run the export again."
    try:
        ordinary = stat.S_ISREG(os.lstat(out_path).st_mode)  # not a link, a device, a pipe
        if ordinary:
            os.remove(out_path)
    except OSError:
        ordinary = False
    if ordinary:
        return f"{out_path} was removed (it was incomplete): run the export again."
    return f"What was written to {out_path} is incomplete: run the export again."


def _fail(name: str, message: str) -> NoReturn:
    click.echo(f"facilitator {name}: {message}", err=True)
    sys.exit(2)


@main.command()
@click.option(
    "--level",
    type=click.Choice(["attendance", "circle", "person"]),
    default="attendance",
    show_default=True,
    help="One row per attendance, per circle, or per person.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "xlsx", "json"]),
    default=None,
    help="Default: from --out's ending, else csv.",
)
@click.option(
    "--out", "out_path", default=None, help="File to write (default, or -: standard output; XLSX needs a file)."
)
@_filter_options
def export(level: str, fmt: str | None, out_path: str | None, **opts: Any) -> None:
    """Export attendance as CSV, XLSX or JSON (anonymous attendees are counted, never named)."""
    import contextlib

    from facilitator.exports.outputs import OutputProblem, in_place, problem, replacing
    from facilitator.exports.parallel import ExportFailed, workers_available
    from facilitator.exports.run import export as run_export
    from facilitator.exports.run import terminal
    from facilitator.exports.writers import FORMATS, format_of

    out_path = None if out_path == "-" else out_path
    chosen = cast("Format", _chosen_format("export", fmt, out_path, format_of, FORMATS) or "csv")
    if chosen == "xlsx" and out_path is None and sys.stdout.isatty():
        _fail("export", "an XLSX file cannot be shown in a terminal: add --out attendance.xlsx")
    asked = _asked("export", opts)
    if out_path is not None:
        _not_over_our_files("export", out_path, asked.url, opts["config_path"])
    store = _store("export", asked.url)
    wanted = _wanted("export", opts, asked, store)
    # A large attendance CSV is shared between helper processes where there are two cores or more
    # (facilitator/exports/parallel.py); their temporary file goes beside --out when --out is
    # an ordinary file (not /dev/null or a pipe: then the system's temporary folder).
    workers, progress = workers_available(), terminal()
    kind = cast("Level", level)
    direct = out_path is not None and in_place(out_path)
    try:
        if out_path is None:
            try:
                out_stream = sys.stdout.buffer
                count = run_export(store.engine, kind, chosen, wanted, out_stream, progress=progress, workers=workers)
                out_stream.flush()
            except BrokenPipeError:
                sys.exit(1)  # `export | head`: what was wanted was read
            except OSError as error:
                _fail("export", f"cannot write to standard output: {error.strerror or error}")
        elif direct:  # a device, a pipe or a link: written as it is
            with open(out_path, "wb") as out:
                ordinary = stat.S_ISREG(os.fstat(out.fileno()).st_mode)
                scratch = os.path.dirname(os.path.abspath(out_path)) if ordinary else None
                count = run_export(
                    store.engine, kind, chosen, wanted, out, progress=progress, workers=workers, scratch=scratch
                )
        else:  # an ordinary file: written whole beside it, then put in its place
            with replacing(out_path) as out:
                scratch = os.path.dirname(os.path.abspath(out_path))
                count = run_export(
                    store.engine, kind, chosen, wanted, out, progress=progress, workers=workers, scratch=scratch
                )
    except ExportFailed as error:
        if error.reader_gone:
            sys.exit(1)  # `export | head`: what was wanted was read
        if out_path is None or direct:
            _fail("export", f"{error}. {_incomplete(out_path)}")
        _fail("export", f"{error}. {_untouched(out_path)}")
    except OutputProblem as error:
        _fail("export", f"{error}. {_untouched(out_path)}" if out_path and not direct else str(error))
    except OSError as error:  # opening a device or a link's target
        _fail("export", str(problem(out_path or "standard output", error)))
    finally:
        with contextlib.suppress(Exception):
            store.close()
    where = f" to {out_path}" if out_path else ""
    click.echo(f"Exported {_rows(count, level)} ({_covered(wanted, asked)}){where}.", err=True)


def _covered(wanted: Any, asked: _Asked) -> str:
    """What an export or report covered, in words (a coordinator's: their groups)."""
    said = wanted.describe()
    if asked.who is None or wanted.groups:
        return str(said)
    from facilitator.exports.access import coordination

    theirs = ", ".join(coordination(asked.config, asked.who).names)
    return f"your groups: {theirs}" if said == "everything" else f"{said}; your groups: {theirs}"


def _rows(count: int, level: str = "") -> str:
    """``1 circle row``, ``2,000 attendance rows``, ``3 rows``."""
    return f"{count:,} {level + ' ' if level else ''}row{'' if count == 1 else 's'}"


def _untouched(out_path: str | None) -> str:
    if out_path is not None and os.path.exists(out_path):
        return f"{out_path} is as it was before: run the export again."
    return "Nothing was written: run the export again."


def _chosen_format(
    name: str, fmt: str | None, out_path: str | None, format_of: Any, formats: tuple[str, ...]
) -> str | None:
    """The format asked for: ``--format``, else ``--out``'s ending; a sentence if they disagree,
    or if the ending is one we do not write and no ``--format`` says what to write."""
    ending = os.path.splitext(out_path)[1].lower() if out_path else ""
    by_name = format_of(out_path) if out_path else None
    if fmt is not None:
        if by_name is not None and by_name != fmt:
            _fail(name, f"--format {fmt} but --out {out_path} ends in {ending}: make them agree")
        return fmt
    if out_path is not None and by_name is None and not _device(out_path):
        endings = [f".{f}" for f in formats]
        listed = f"{', '.join(endings[:-1])} or {endings[-1]}"
        _fail(name, f"--out {out_path}: end the name in {listed}, or say which with --format")
    return by_name


def _device(path: str) -> bool:
    """Whether ``path`` is a device, a pipe or a link (no ending needed: ``--out /dev/null``)."""
    from facilitator.exports.outputs import special

    return special(path)


def _not_over_our_files(name: str, out_path: str, url: str, config_path: str | None) -> None:
    """Refuse an ``--out`` that is the database (or one of its files) or the configuration."""
    from facilitator.storage.opening import database_files

    ours = [(f, "the database") for f in database_files(url)]
    if config_path:
        ours.append((config_path, "the configuration"))
    target = os.path.realpath(out_path)
    for path, what in ours:
        same = os.path.realpath(path) == target
        if not same and os.path.exists(path) and os.path.exists(out_path):
            same = os.path.samefile(path, out_path)
        if same:
            _fail(name, f"--out {out_path} is {what} itself: writing there would destroy it; choose another file")


def _store(name: str, url: str) -> Store:
    """The existing database at ``url`` for a command that reads it; a sentence and exit 2 if none."""
    from facilitator.storage.opening import DatabaseProblem, open_existing

    try:
        return open_existing(url)
    except DatabaseProblem as error:
        _fail(name, str(error))


@main.command()
@click.option(
    "--by",
    type=click.Choice(["group", "region"]),
    default="group",
    show_default=True,
    help="One bar and one row per group, or per region.",
)
@click.option("--out", "out_path", required=True, help="The chart to write: a .png or .svg file.")
@click.option("--format", "fmt", type=click.Choice(["png", "svg"]), default=None, help="Default: from --out's ending.")
@click.option("--table", "table_path", default=None, help="The figures as CSV (default: beside --out, NAME-table.csv).")
@_filter_options
def report(by: str, out_path: str, fmt: str | None, table_path: str | None, **opts: Any) -> None:
    """Chart attendance per month by group or region, with the same figures as a table (docs/reports.md)."""
    from facilitator.exports.outputs import OutputProblem
    from facilitator.exports.report import CHART_FORMATS, chart_format, default_table_path
    from facilitator.exports.report import run as run_report

    chosen = _chosen_format("report", fmt, out_path, chart_format, CHART_FORMATS)
    if chosen is None:
        _fail("report", f"--out {out_path} must end in .png or .svg (or say which with --format png|svg)")
    if table_path is None and _device(out_path):
        _fail("report", f"--out {out_path} is not a file: say where the table goes with --table (it is printed too)")
    table = table_path or default_table_path(out_path)
    if os.path.abspath(table) == os.path.abspath(out_path):
        _fail("report", f"the table would overwrite the chart ({out_path}): give --table another file")
    asked = _asked("report", opts)
    for path in (out_path, table):
        _not_over_our_files("report", path, asked.url, opts["config_path"])
    store = _store("report", asked.url)
    try:
        wanted = _wanted("report", opts, asked, store)
        written = run_report(store.engine, by, wanted, out_path, chosen, table, sys.stdout)  # type: ignore[arg-type]
        sys.stdout.flush()
    except OutputProblem as error:
        _fail("report", f"{error}; nothing was written")
    except OSError as error:
        _fail("report", f"cannot write to standard output: {error.strerror or error}")
    finally:
        store.close()
    click.echo(
        f"Reported {_rows(len(written.report.rows))} ({_covered(wanted, asked)}): chart {out_path}, table {table}.",
        err=True,
    )


@main.command("consent-log")
@click.option("--format", "fmt", type=click.Choice(["text", "csv", "json"]), default="text", show_default=True)
@click.option("--since", default=None, help="First date included (YYYY-MM-DD, UTC).")
@click.option("--until", default=None, help="Last date included (YYYY-MM-DD, UTC).")
@DB_OPTION
def consent_log(fmt: str, since: str | None, until: str | None, database_url: str) -> None:
    """Print the consent ledger for an audit: who agreed to which text, when, where; every withdrawal and erasure."""
    from facilitator.exports.audit import ledger_table, write_text
    from facilitator.exports.filters import local_day_bounds, zone
    from facilitator.exports.writers import WRITERS

    first, last = _dates("consent-log", since, until)
    start, end = local_day_bounds(first, last, zone("UTC"))
    store = _store("consent-log", database_url)
    try:
        found = ledger_table(store, start, end)
        if fmt == "text":
            write_text(found, sys.stdout, (first, last))
        else:
            WRITERS[fmt](found, sys.stdout.buffer, None)  # type: ignore[index]
        sys.stdout.flush()
    except BrokenPipeError:
        sys.exit(1)
    except OSError as error:
        _fail("consent-log", f"cannot write to standard output: {error.strerror or error}")
    finally:
        store.close()


if __name__ == "__main__":  # pragma: no cover
    main()
