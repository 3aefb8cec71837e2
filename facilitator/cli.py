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

import stat
import sys
from typing import TYPE_CHECKING, Any, NoReturn, cast

import click

from facilitator.storage import DEFAULT_URL

if TYPE_CHECKING:
    from facilitator.exports.levels import Level
    from facilitator.exports.writers import Format

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
    sys.exit(asyncio.run(run_serve(config, choose_url(config, database_url))))


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


def _wanted(name: str, opts: dict[str, Any]) -> tuple[str, Any]:
    """The database URL and the filter the shared options ask for; exits with a sentence if they cannot be used."""
    from facilitator.exports.filters import ExportFilter, parse_day, split_values

    try:
        since = parse_day(opts["since"], "--since") if opts["since"] else None
        until = parse_day(opts["until"], "--until") if opts["until"] else None
    except ValueError as error:
        _fail(name, str(error))
    if since and until and since > until:
        _fail(name, f"--since {since} is after --until {until}: swap them")
    wanted = ExportFilter(
        groups=split_values(opts["groups"]),
        regions=split_values(opts["regions"]),
        sectors=split_values(opts["sectors"]),
        platforms=split_values(opts["platforms"]),
        scripts=split_values(opts["scripts"]),
        since=since,
        until=until,
    )
    url = opts["database_url"]
    if opts["config_path"] is None:
        if opts["who"]:
            _fail(name, "--as needs --config: coordinators are named in the serve configuration")
        return url, wanted
    from facilitator.config import ConfigError, load_config, person_key
    from facilitator.exports.access import NotAllowed, allowed_group_ids, coordination, has_coordinators
    from facilitator.storage.store import Store

    try:
        config = load_config(opts["config_path"])
    except ConfigError as error:
        _fail(name, str(error))
    if config.database and opts["database_url"] == DEFAULT_URL:
        url = config.database
    if not has_coordinators(config):
        if opts["who"]:
            _fail(name, "this configuration names no coordinators, so --as cannot be checked: add them, or drop --as")
        return url, wanted
    if not opts["who"]:
        _fail(
            name, "this configuration names coordinators: say which one you are with --as (like --as @ana:example.org)"
        )
    try:
        who = str(person_key(opts["who"]))
    except ValueError as error:
        _fail(name, f"--as: {error}")
    store = Store(url)
    try:
        store.sync_groups(config)
        with store.engine.connect() as conn:
            ids = allowed_group_ids(conn, coordination(config, who), wanted.groups, wanted.regions)
    except NotAllowed as error:
        _fail(name, str(error))
    finally:
        store.close()
    from dataclasses import replace

    return url, replace(wanted, group_ids=ids)


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
@click.option("--out", "out_path", default=None, help="File to write (default: standard output; XLSX needs a file).")
@_filter_options
def export(level: str, fmt: str | None, out_path: str | None, **opts: Any) -> None:
    """Export attendance as CSV, XLSX or JSON (anonymous attendees are counted, never named)."""
    import os

    from facilitator.exports.parallel import ExportFailed, workers_available
    from facilitator.exports.run import export as run_export
    from facilitator.exports.run import terminal
    from facilitator.exports.writers import format_of
    from facilitator.storage.store import Store

    chosen = cast("Format", fmt or (format_of(out_path) if out_path else None) or "csv")
    if chosen == "xlsx" and out_path is None and sys.stdout.isatty():
        _fail("export", "an XLSX file cannot be shown in a terminal: add --out attendance.xlsx")
    url, wanted = _wanted("export", opts)
    store = Store(url)  # migrates an older database before reading it
    # A large attendance CSV is shared between helper processes where there are two cores or more
    # (facilitator/exports/parallel.py); their temporary file goes beside --out when --out is
    # an ordinary file (not /dev/null or a pipe: then the system's temporary folder).
    workers, progress = workers_available(), terminal()
    kind = cast("Level", level)
    try:
        if out_path is None:
            out_stream = sys.stdout.buffer
            count = run_export(store.engine, kind, chosen, wanted, out_stream, progress=progress, workers=workers)
        else:
            with open(out_path, "wb") as out:
                ordinary = stat.S_ISREG(os.fstat(out.fileno()).st_mode)
                scratch = os.path.dirname(os.path.abspath(out_path)) if ordinary else None
                count = run_export(
                    store.engine, kind, chosen, wanted, out, progress=progress, workers=workers, scratch=scratch
                )
    except ExportFailed as error:
        if error.reader_gone:
            sys.exit(1)  # `export | head`: what was wanted was read
        _fail("export", f"{error}. {_incomplete(out_path)}")
    finally:
        store.close()
    where = f" to {out_path}" if out_path else ""
    click.echo(f"Exported {count:,} {level} rows ({wanted.describe()}){where}.", err=True)


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
@click.option("--table", "table_path", default=None, help="The figures as CSV (default: --out ending in .csv).")
@_filter_options
def report(by: str, out_path: str, fmt: str | None, table_path: str | None, **opts: Any) -> None:
    """Chart attendance per month by group or region, with the same figures as a table (docs/reports.md)."""
    import os

    from facilitator.exports.report import chart_format, default_table_path
    from facilitator.exports.report import run as run_report
    from facilitator.storage.store import Store

    chosen = fmt or chart_format(out_path)
    if chosen is None:
        _fail("report", f"--out {out_path} must end in .png or .svg (or say which with --format png|svg)")
    table = table_path or default_table_path(out_path)
    if os.path.abspath(table) == os.path.abspath(out_path):
        _fail("report", f"the table would overwrite the chart ({out_path}): give --table another file")
    url, wanted = _wanted("report", opts)
    store = Store(url)  # migrates an older database before reading it
    try:
        written = run_report(store.engine, by, wanted, out_path, chosen, table, sys.stdout)  # type: ignore[arg-type]
    except OSError as error:
        _fail("report", f"cannot write {error.filename or out_path}: {error.strerror or error}")
    finally:
        store.close()
    rows = len(written.report.rows)
    counted = f"{rows:,} row{'' if rows == 1 else 's'}"
    click.echo(f"Reported {counted} ({wanted.describe()}): chart {out_path}, table {table}.", err=True)


@main.command("consent-log")
@click.option("--format", "fmt", type=click.Choice(["text", "csv", "json"]), default="text", show_default=True)
@click.option("--since", default=None, help="First date included (YYYY-MM-DD, UTC).")
@click.option("--until", default=None, help="Last date included (YYYY-MM-DD, UTC).")
@DB_OPTION
def consent_log(fmt: str, since: str | None, until: str | None, database_url: str) -> None:
    """Print the consent ledger for an audit: who agreed to which text, when, where; every withdrawal and erasure."""
    from facilitator.exports.audit import ledger_table, write_text
    from facilitator.exports.filters import local_day_bounds, parse_day, zone
    from facilitator.exports.writers import WRITERS
    from facilitator.storage.store import Store

    try:
        first = parse_day(since, "--since") if since else None
        last = parse_day(until, "--until") if until else None
    except ValueError as error:
        _fail("consent-log", str(error))
    start, end = local_day_bounds(first, last, zone("UTC"))
    store = Store(database_url)
    try:
        found = ledger_table(store, start, end)
        if fmt == "text":
            write_text(found, sys.stdout)
        else:
            WRITERS[fmt](found, sys.stdout.buffer, None)  # type: ignore[index]
    finally:
        store.close()


if __name__ == "__main__":  # pragma: no cover
    main()
