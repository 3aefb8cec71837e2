"""Where attendance and consent are kept: the tables, the store, its migrations, people's rights."""

DEFAULT_URL = "sqlite:///facilitator.db"
"""The database when none is given: a SQLite file in the working folder."""
