"""The ``facilitator`` command: check and run session scripts, in a terminal or as a bot.

- ``facilitator check PATH...``: validate scripts and print each one's timeline.
- ``facilitator schema``: a JSON Schema for scripts, for editors.
- ``facilitator demo``: a whole circle with simulated participants.
- ``facilitator console``: type as the facilitator and as participants.
- ``facilitator diagram``: the engine's transition table as a Mermaid diagram.
- ``facilitator serve --config FILE``: the bot on Matrix (see the README).

The database is ``--db`` or ``FACILITATOR_DATABASE_URL`` (default: ``sqlite:///facilitator.db``).
"""

from __future__ import annotations

import asyncio
import sys

import click

from facilitator.engine.circle import diagram as engine_diagram
from facilitator.script.check import check_paths, schema_json
from facilitator.storage.store import DEFAULT_URL

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
    sys.exit(check_paths(paths, sys.stdout, sys.stderr))


@main.command()
def schema() -> None:
    """Print the JSON Schema of session scripts."""
    click.echo(schema_json())


@main.command()
def diagram() -> None:
    """Print the circle's states and transitions as a Mermaid diagram."""
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
    from adapters.console_session import run_console

    asyncio.run(run_console(sys.stdin, sys.stdout, speaker=speaker, room=room, database_url=database_url))


@main.command()
@click.option("--config", "config_path", required=True, help="The serve configuration (YAML; see the README).")
@click.option("--db", "database_url", default=None, help="Database URL (overrides the config's 'database').")
@click.option("-v", "--verbose", is_flag=True, help="Log more (each join, invite and reconnect).")
def serve(config_path: str, database_url: str | None, verbose: bool) -> None:
    """Run the bot on the chat platforms the configuration names, until stopped."""
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


if __name__ == "__main__":  # pragma: no cover
    main()
