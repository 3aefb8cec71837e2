"""The configuration of ``facilitator serve``: one YAML file, checked before anything starts.

Secrets never sit in the file: it names the environment variables that hold them
(``password_env``, ``pickle_key_env``). A mistake is reported as ``file:line:column: what is
wrong; how to fix it``, the same way as a session script's (the same loader reads both).

Example (see the README for the walk-through)::

    database: sqlite:///facilitator.db
    matrix:
      homeserver: https://matrix.example.org
      user_id: "@facilitator:example.org"
      password_env: FACILITATOR_MATRIX_PASSWORD
      pickle_key_env: FACILITATOR_MATRIX_PICKLE_KEY
      store_dir: matrix-store
      allowed_inviters: ["@coordinator:example.org", ":example.org"]
    groups:
      - name: North West check-ins
        region: North West
        sector: health
        matrix_rooms: ["!abcdef:example.org"]
        steer_level: 50
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import make_url

from facilitator.runtime.host import GroupInfo
from facilitator.script.errors import RuleError, ScriptError, explain
from facilitator.script.loader import read_yaml
from facilitator.storage.urls import url_problem

MATRIX_USER = re.compile(r"^@[^:\s]+:[^\s]+$")
MATRIX_ROOM = re.compile(r"^![^:\s]+(:[^\s]+)?$")  # room version 12 ids have no server part
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


def _discord_id(value: int) -> int:
    """A Discord id (a snowflake) is a positive number."""
    if value <= 0:
        raise ValueError(
            f"{value} is not a Discord id: ids are long numbers like 111111111111111111 "
            "(in Discord, turn on Settings > Advanced > Developer Mode, then right-click the server, "
            "channel or role > Copy ID)"
        )
    return value


PowerLevel = Annotated[int, Field(ge=0, le=100)]
Snowflake = Annotated[
    int,
    AfterValidator(_discord_id),
    Field(description="A Discord id (Developer Mode: right-click > Copy ID)."),
]


def _role_name(value: object) -> object:
    """A role id written without quotes is read as a number: take it as its text."""
    if isinstance(value, str) and not value.strip():
        raise ValueError(
            "an empty text names no role; write a role id (like 333333333333333333: right-click the role > "
            "Copy Role ID) or a role's name (like Facilitators)"
        )
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


RoleName = Annotated[str, BeforeValidator(_role_name), StringConstraints(strip_whitespace=True, min_length=1)]

LAWFUL_BASES = (
    "consent",
    "contract",
    "legal_obligation",
    "vital_interests",
    "public_task",
    "legitimate_interests",
)
"""The six lawful bases of UK and EU GDPR (Article 6(1)), as they are written in the ledger."""


def person_key(value: object) -> object:
    """A person as the configuration names them, as the runtime keys them.

    ``@ana:example.org`` is a Matrix user; a number (or digits) is a Discord user id; a key
    with its platform already (``discord:1234``, ``console:ana``) is kept as it is."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return f"discord:{value}" if value > 0 else value
    if isinstance(value, str):
        text = value.strip()
        if MATRIX_USER.match(text):
            return f"matrix:{text}"
        if text.isdigit() and int(text) > 0:
            return f"discord:{text}"
        if re.match(r"^(matrix|discord|console):\S+$", text):
            return text
        raise ValueError(
            f"{text!r} is not a person: write a Matrix user (@ana:example.org) "
            "or a Discord user id (123456789012345678)"
        )
    return value


PersonKey = Annotated[str, BeforeValidator(person_key)]


def _zone_name(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{value!r} is not a time zone: write an IANA name like Europe/London or America/New_York"
        ) from None
    return value


TimeZone = Annotated[str, AfterValidator(_zone_name)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MatrixConfig(_Strict):
    """How the bot reaches Matrix, and who may bring it into a room."""

    homeserver: str = Field(
        description="The homeserver's client URL, e.g. https://matrix.example.org.",
        examples=["https://matrix.example.org"],
    )
    user_id: str = Field(
        description="The bot's full Matrix id, e.g. @facilitator:example.org.", examples=["@facilitator:example.org"]
    )
    password_env: str = Field(
        default="FACILITATOR_MATRIX_PASSWORD",
        description="Environment variable holding the bot's password; needed only for the first log-in.",
    )
    pickle_key_env: str = Field(
        default="FACILITATOR_MATRIX_PICKLE_KEY",
        description="Environment variable holding the passphrase that encrypts the crypto store.",
    )
    store_dir: Path = Field(
        default=Path("matrix-store"),
        description="Where the device's keys and saved log-in are kept (relative to the config file).",
        examples=["matrix-store"],
    )
    device_name: str = Field(default="facilitator", max_length=100)
    allowed_inviters: tuple[str, ...] = Field(
        default=(),
        description="Who may invite the bot: full ids (@coordinator:example.org) or whole servers (:example.org).",
        examples=[["@coordinator:example.org", ":example.org"]],
    )
    command_prefix: str = Field(default="!circle", min_length=1, max_length=32)
    steer_level: PowerLevel = Field(default=50, description="Power level needed to start and steer circles.")
    encrypt_direct_rooms: bool = Field(default=True, description="Encrypt the direct rooms for private messages.")
    max_backoff_seconds: float = Field(default=60.0, gt=0, le=3600)
    rate_limit_retries: int = Field(default=5, ge=0, le=50)

    @field_validator("homeserver")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http:// or https:// URL, e.g. https://matrix.example.org")
        return value.rstrip("/")

    @field_validator("user_id")
    @classmethod
    def _user(cls, value: str) -> str:
        if not MATRIX_USER.match(value):
            raise ValueError("must be a full Matrix id like @facilitator:example.org")
        return value

    @field_validator("password_env", "pickle_key_env")
    @classmethod
    def _env(cls, value: str) -> str:
        if not ENV_NAME.match(value):
            raise ValueError("must be the NAME of an environment variable (capitals, digits, _), not the secret")
        return value

    @field_validator("allowed_inviters")
    @classmethod
    def _inviters(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            if not (MATRIX_USER.match(entry) or re.match(r"^:[^\s:]+", entry)):
                raise ValueError(f"{entry!r} is neither a Matrix id (@name:server) nor a server (:server)")
        return value

    def may_invite(self, user_id: str) -> bool:
        """Whether an invite from ``user_id`` is accepted."""
        server = user_id.split(":", 1)[1] if ":" in user_id else ""
        return user_id in self.allowed_inviters or f":{server}" in self.allowed_inviters

    def password(self) -> str | None:
        """The password from the environment (None if unset)."""
        return os.environ.get(self.password_env) or None

    def pickle_key(self) -> str:
        """The crypto store's passphrase from the environment; it must be set."""
        key = os.environ.get(self.pickle_key_env, "")
        if len(key) < 16:
            raise ConfigError(
                f"set the environment variable {self.pickle_key_env} to a passphrase of 16 or more characters: "
                "it encrypts the bot's keys on disk (keep it with your other secrets; the same one every start)"
            )
        return key


DISCORD_PERMISSIONS = (
    "administrator",
    "manage_guild",
    "manage_channels",
    "manage_roles",
    "manage_messages",
    "moderate_members",
    "kick_members",
    "mute_members",
    "move_members",
)
"""Discord permissions that may be named as the one that lets a member steer circles."""


class DiscordConfig(_Strict):
    """How the bot reaches Discord, which servers it serves, and who may steer there."""

    token_env: str = Field(
        default="FACILITATOR_DISCORD_TOKEN", description="Environment variable holding the bot's token."
    )
    guilds: tuple[Snowflake, ...] = Field(
        min_length=1,
        description="The servers (guild ids) the bot serves; /circle is registered there, and refused elsewhere.",
        examples=[[111111111111111111]],
    )
    steer_roles: tuple[RoleName, ...] = Field(
        default=(),
        description="Roles (ids, or names) whose members may start and steer circles.",
        examples=[[333333333333333333, "Facilitators"]],
    )
    steer_permission: str = Field(
        default="manage_channels",
        description="A Discord permission whose holders may also start and steer circles (in that channel).",
    )
    api_base: str | None = Field(
        default=None, description="Only for tests against a local stand-in for Discord: its REST base URL."
    )
    gateway: str | None = Field(
        default=None, description="Only for tests against a local stand-in for Discord: its gateway URL."
    )

    @field_validator("token_env")
    @classmethod
    def _env(cls, value: str) -> str:
        if not ENV_NAME.match(value):
            raise ValueError("must be the NAME of an environment variable (capitals, digits, _), not the token")
        return value

    @field_validator("steer_permission")
    @classmethod
    def _permission(cls, value: str) -> str:
        if value not in DISCORD_PERMISSIONS:
            raise ValueError(f"{value!r} is not one of {', '.join(DISCORD_PERMISSIONS)}")
        return value

    def token(self) -> str:
        """The bot token from the environment; it must be set."""
        token = os.environ.get(self.token_env, "")
        if not token:
            raise ConfigError(
                f"set the environment variable {self.token_env} to the bot's token (Discord developer portal > "
                "your application > Bot > Reset Token)"
            )
        return token


class GroupConfig(_Strict):
    """A group of rooms: its name, region and sector (for reports), and who may steer there."""

    name: str = Field(min_length=1, max_length=255, examples=["North West check-ins"])
    region: str | None = Field(default=None, max_length=120, examples=["North West"])
    sector: str | None = Field(default=None, max_length=120, examples=["health"])
    matrix_rooms: tuple[str, ...] = Field(default=(), examples=[["!abcdef:example.org"]])
    steer_level: PowerLevel | None = Field(default=None, description="Overrides matrix.steer_level here.")
    discord_channels: tuple[Snowflake, ...] = Field(default=(), examples=[[222222222222222222]])
    steer_roles: tuple[RoleName, ...] | None = Field(
        default=None, description="Overrides discord.steer_roles here.", examples=[["NW lead"]]
    )
    timezone: TimeZone = Field(
        default="UTC", description="Where its dates are counted (exports and reports).", examples=["Europe/London"]
    )
    coordinators: tuple[PersonKey, ...] = Field(
        default=(),
        description="Who may export this group's attendance.",
        examples=[["@ana:example.org", 444444444444444444]],
    )

    @field_validator("matrix_rooms")
    @classmethod
    def _rooms(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for room in value:
            if not MATRIX_ROOM.match(room):
                raise ValueError(f"{room!r} is not a Matrix room id (like !abcdef:example.org; not an #alias)")
        return value

    def info(self) -> GroupInfo:
        return GroupInfo(self.name, self.region, self.sector, self.timezone)

    def rooms(self) -> tuple[str, ...]:
        """Its rooms as the adapters name them (Discord channel ids as text)."""
        return (*self.matrix_rooms, *(str(c) for c in self.discord_channels))


class RegionConfig(_Strict):
    """A region: who coordinates every group whose ``region`` is this name."""

    name: str = Field(min_length=1, max_length=120, examples=["North West"])
    coordinators: tuple[PersonKey, ...] = Field(min_length=1, examples=[["@ana:example.org"]])


class PrivacyConfig(_Strict):
    """What the deployment relies on to keep records, and for how long (see docs/privacy.md)."""

    lawful_basis: str = Field(default="consent", description="Recorded with every consent entry.")
    retention_days: int | None = Field(
        default=365, ge=1, le=36500, description="Named attendance older than this is anonymised; null keeps it."
    )

    @field_validator("lawful_basis")
    @classmethod
    def _basis(cls, value: str) -> str:
        if value not in LAWFUL_BASES:
            raise ValueError(f"{value!r} is not a lawful basis: use one of {', '.join(LAWFUL_BASES)}")
        return value


class ServeConfig(_Strict):
    """Everything ``facilitator serve`` needs."""

    database: str | None = Field(
        default=None,
        description="Database URL (a relative SQLite file is next to the configuration); "
        "FACILITATOR_DATABASE_URL or sqlite:///facilitator.db otherwise.",
        examples=["sqlite:///facilitator.db"],
    )
    matrix: MatrixConfig | None = None
    discord: DiscordConfig | None = None
    groups: tuple[GroupConfig, ...] = ()
    regions: tuple[RegionConfig, ...] = ()
    privacy: PrivacyConfig = PrivacyConfig()

    @field_validator("database")
    @classmethod
    def _database(cls, value: str | None) -> str | None:
        if value is not None and (problem := _database_problem(value)):
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _something_to_serve(self) -> ServeConfig:
        if self.matrix is None and self.discord is None:
            raise ValueError("nothing to serve: add a 'matrix:' or a 'discord:' section (see the README)")
        seen: dict[str, int] = {}
        for index, group in enumerate(self.groups):
            for key, rooms in (("matrix_rooms", group.matrix_rooms), ("discord_channels", group.discord_channels)):
                for at, room in enumerate(str(r) for r in rooms):
                    if room not in seen:
                        seen[room] = index
                        continue
                    first = self.groups[seen[room]].name
                    if seen[room] == index:
                        message = f"room {room} is listed twice in group {first!r}; remove one"
                    else:
                        message = f"room {room} is in two groups ({first!r} and {group.name!r}); keep it in one"
                    raise RuleError(message, ("groups", index, key, at))
        used = {g.region for g in self.groups if g.region}
        listed: set[str] = set()
        for index, region in enumerate(self.regions):
            name = region.name
            if name in listed:
                twice = f"region {name!r} is listed twice under 'regions'; merge its coordinators"
                raise RuleError(twice, ("regions", index, "name"))
            listed.add(name)
            if name not in used:
                known = ", ".join(sorted(used)) or "none yet"
                raise RuleError(
                    f"region {name!r} under 'regions' is no group's region (groups' regions: {known}); "
                    "check its spelling, or give a group 'region: " + name + "'",
                    ("regions", index, "name"),
                )
        return self

    def group_of(self, room: str) -> GroupConfig | None:
        """The configured group a room (a Matrix room id, a Discord channel id) belongs to, if any."""
        for group in self.groups:
            if room in group.rooms():
                return group
        return None


class ConfigError(Exception):
    """The configuration cannot be used; the message says why and how to fix it."""


def _database_problem(value: str) -> str | None:
    """What is wrong with ``value`` as the configuration's database URL, or None."""
    return url_problem(value, here="next to this one", memory=False)


def _next_to(database: str, folder: Path) -> str:
    """A SQLite URL whose relative file is taken as relative to ``folder`` (other URLs as they are)."""
    url = make_url(database)
    name = url.database
    if url.get_backend_name() != "sqlite" or not name or name.startswith("file:") or Path(name).is_absolute():
        return database
    return url.set(database=str(folder / name)).render_as_string(hide_password=False)


def load_config(path: str | Path) -> ServeConfig:
    """Read and check a serve configuration; relative paths in it are relative to the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; write one as the README shows") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read it ({error})") from None
    try:
        data, located = read_yaml(text, str(path))
    except ScriptError as error:
        raise ConfigError(str(error)) from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}:1:1: the configuration must be a mapping with a 'matrix:' or 'discord:' section (see the README)"
        )
    try:
        config = ServeConfig.model_validate(data)
    except ValidationError as error:
        explained = explain(error, data, located, str(path), root=ServeConfig)
        raise ConfigError("\n".join(str(e) for e in explained)) from None
    if config.matrix is not None and not config.matrix.store_dir.is_absolute():
        matrix = config.matrix.model_copy(update={"store_dir": path.parent / config.matrix.store_dir})
        config = config.model_copy(update={"matrix": matrix})
    if config.database is not None:  # not the folder serve happens to be started in (systemd: /)
        config = config.model_copy(update={"database": _next_to(config.database, path.absolute().parent)})
    return config


def describe(config: ServeConfig) -> dict[str, Any]:
    """What is configured, without secrets (for the start-up log line)."""
    out: dict[str, Any] = {"groups": [g.name for g in config.groups]}
    if config.matrix is not None:
        out["matrix"] = {"homeserver": config.matrix.homeserver, "user_id": config.matrix.user_id}
    if config.discord is not None:
        out["discord"] = {"guilds": list(config.discord.guilds)}
    return out
