"""facilitator: a bot that keeps time and care for reflective circles.

The package is split so that the decisions are pure and the I/O is at the edge:

- ``facilitator.script``: session scripts (YAML) loaded into typed, validated models.
- ``facilitator.engine``: the sans-I/O circle state machine (events in, actions out, time passed in).
- ``facilitator.prompts`` and ``facilitator.voice``: prompt banks and the bot's own words.
- ``facilitator.storage``: SQLAlchemy Core tables, the store and its Alembic migrations.
- ``facilitator.runtime``: the asyncio host for many circles, their timers and the adapters.
- ``facilitator.cli``: the ``facilitator`` command.
"""

__version__ = "0.1.0"
