"""The serve configuration: what a coordinator writes, and what they are told when it is wrong."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from facilitator.config import ConfigError, load_config

GOOD = """\
database: sqlite:///facilitator.db
matrix:
  homeserver: https://matrix.example.org/
  user_id: "@facilitator:example.org"
  store_dir: matrix-store
discord:
  guilds: [111111111111111111]
  steer_roles: ["Facilitator ", 333333333333333333]
groups:
  - name: North West check-ins
    region: North West
    sector: health
    matrix_rooms: ["!abcdef:example.org"]
    discord_channels: [222222222222222222]
    steer_roles: ["Lead"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "serve.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problem(tmp_path: Path, text: str) -> str:
    """What loading ``text`` says is wrong, each line starting ``serve.yaml:LINE:COLUMN:``."""
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, text))
    return str(raised.value).replace(f"{tmp_path}{os.sep}", "")


def test_a_good_configuration_serves_matrix_and_discord_side_by_side(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.matrix is not None and config.discord is not None
    assert config.matrix.homeserver == "https://matrix.example.org"
    assert config.matrix.store_dir == tmp_path / "matrix-store"  # relative to the file
    group = config.group_of("222222222222222222")
    assert group is not None and group is config.group_of("!abcdef:example.org")
    assert group.steer_roles == ("Lead",) and config.discord.steer_permission == "manage_channels"
    assert config.discord.steer_roles == ("Facilitator", "333333333333333333")  # an unquoted id is an id
    assert config.group_of("333") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("matrix:\n  homeserver: ftp://nope\n  user_id: '@b:x.org'\n", "serve.yaml:2:15: 'homeserver' in 'matrix'"),
        ("discord:\n  guilds: [1]\n  steer_permission: be_nice\n", "serve.yaml:3:21: 'steer_permission' in 'discord'"),
        ("discord:\n  guilds: []\n", "serve.yaml:2:11:"),
        ("discord:\n  guilds: [0]\n", "serve.yaml:2:"),
        ("discord:\n  guilds: [1]\n  token_env: the-secret-itself\n", "must be the NAME of an environment variable"),
        ("groups: []\n", "nothing to serve: add a 'matrix:' or a 'discord:' section"),
        (
            "discord:\n  guilds: [1]\ngroups:\n  - name: A\n    discord_channels: [5]\n  - name: B\n"
            "    discord_channels: [5]\n",
            "room 5 is in two groups ('A' and 'B')",
        ),
        ("- just a list\n", "serve.yaml:1:1: the configuration must be a mapping"),
    ],
)
def test_a_mistake_is_named_with_file_line_and_column(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in problem(tmp_path, text)


def test_a_missing_discord_token_says_where_to_get_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(write(tmp_path, "discord:\n  guilds: [1]\n"))
    assert config.discord is not None
    monkeypatch.delenv("FACILITATOR_DISCORD_TOKEN", raising=False)
    with pytest.raises(ConfigError, match=r"FACILITATOR_DISCORD_TOKEN.*Reset Token"):
        config.discord.token()
    monkeypatch.setenv("FACILITATOR_DISCORD_TOKEN", "abc")
    assert config.discord.token() == "abc"


def test_a_region_with_coordinators_but_no_groups_is_a_typo_spelled_out(tmp_path: Path) -> None:
    text = GOOD + "regions:\n  - name: Nrth West\n    coordinators: ['@ana:example.org']\n"
    message = problem(tmp_path, text)
    assert "region 'Nrth West' under 'regions' is no group's region (groups' regions: North West)" in message


def test_coordinators_are_people_the_bot_can_recognise(tmp_path: Path) -> None:
    text = GOOD.replace('    steer_roles: ["Lead"]\n', "    steer_roles: [\"Lead\"]\n    coordinators: ['ana']\n")
    assert "'ana' is not a person: write a Matrix user (@ana:example.org)" in problem(tmp_path, text)
    text = GOOD.replace(
        '    steer_roles: ["Lead"]\n',
        '    steer_roles: ["Lead"]\n'
        "    timezone: Europe/London\n"
        "    coordinators: ['@ana:example.org', 444444444444444444]\n",
    )
    config = load_config(write(tmp_path, text))
    assert config.groups[0].coordinators == ("matrix:@ana:example.org", "discord:444444444444444444")
    assert config.privacy.lawful_basis == "consent" and config.privacy.retention_days == 365
    assert "is not a time zone" in problem(tmp_path, text.replace("Europe/London", "Mars/Olympus"))
    bad_basis = text + "privacy:\n  lawful_basis: vibes\n"
    assert "'vibes' is not a lawful basis: use one of consent, contract" in problem(tmp_path, bad_basis)


DISCORD = "discord:\n  guilds: [111111111111111111]\n"


def test_a_misspelt_top_level_key_is_matched_against_the_configurations_own_keys(tmp_path: Path) -> None:
    message = problem(tmp_path, "matrx:\n  homeserver: https://m.org\n")
    assert message == (
        "serve.yaml:1:1: unknown key 'matrx' at the top level; did you mean 'matrix'? "
        "(allowed keys: database, matrix, discord, groups, regions, privacy)"
    )
    assert "did you mean 'database'?" in problem(tmp_path, "databse: sqlite:///bot.db\n" + DISCORD)
    far = problem(tmp_path, DISCORD + "colour: blue\n")
    assert far == (
        "serve.yaml:3:1: unknown key 'colour' at the top level; "
        "allowed keys: database, matrix, discord, groups, regions, privacy"
    )


def test_a_misspelt_key_inside_a_section_gets_a_suggestion_and_the_keys_allowed_there(tmp_path: Path) -> None:
    message = problem(tmp_path, "matrix:\n  homeservr: https://m.org\n  user_id: '@b:m.org'\n")
    # One line: not also "needs 'homeserver'", the typo's other face.
    assert message.startswith("serve.yaml:2:3: unknown key 'homeservr' in 'matrix'; did you mean 'homeserver'? ")
    assert "(allowed keys: homeserver, user_id, password_env," in message and "\n" not in message
    missing = problem(tmp_path, "matrix:\n  user_id: '@b:m.org'\n")
    assert missing == "serve.yaml:2:3: 'matrix' needs 'homeserver', e.g. homeserver: https://matrix.example.org"


def test_a_rule_over_the_whole_configuration_points_at_the_item_that_breaks_it(tmp_path: Path) -> None:
    two_groups = (
        DISCORD + "groups:\n  - name: A\n    discord_channels: [5]\n  - name: B\n    discord_channels: [6, 5]\n"
    )
    assert problem(tmp_path, two_groups) == "serve.yaml:7:27: room 5 is in two groups ('A' and 'B'); keep it in one"
    rooms = "matrix:\n  homeserver: https://m.org\n  user_id: '@b:m.org'\ngroups:\n  - name: A\n"
    twice = rooms + "    matrix_rooms: ['!a:m.org', '!b:m.org', '!a:m.org']\n"
    assert problem(tmp_path, twice) == "serve.yaml:6:44: room !a:m.org is listed twice in group 'A'; remove one"
    regions = (
        DISCORD + "groups:\n  - name: A\n    region: South\nregions:\n  - name: South\n    coordinators: [1]\n"
        "  - name: North\n    coordinators: [2]\n"
    )
    assert problem(tmp_path, regions).startswith("serve.yaml:9:11: region 'North' under 'regions' is no group's")
    again = regions.replace("name: North", "name: South")
    assert problem(tmp_path, again).startswith("serve.yaml:9:11: region 'South' is listed twice under 'regions'")


def test_one_room_where_a_list_is_needed_is_shown_as_that_list(tmp_path: Path) -> None:
    text = DISCORD + 'groups:\n  - name: A\n    matrix_rooms: "!abc:example.org"\n'
    assert problem(tmp_path, text) == (
        "serve.yaml:5:19: 'matrix_rooms' in item 1 of 'groups' should be a list, not \"!abc:example.org\"; "
        'e.g. matrix_rooms: ["!abc:example.org"]'
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "discord:\n  guilds: [1]\n  steer_roles: ['']\n",
            "serve.yaml:3:17: item 1 of 'steer_roles' in 'discord': an empty text names no role; "
            "write a role id (like 333333333333333333",
        ),
        ("discord:\n  guilds: [0]\n", "serve.yaml:2:12: item 1 of 'guilds' in 'discord': 0 is not a Discord id: ids"),
        (
            DISCORD + "groups:\n  - name: A\n    region: A\nregions:\n  - name: A\n    coordinators: ['ana']\n",
            "serve.yaml:8:20: item 1 of 'coordinators' in item 1 of 'regions': 'ana' is not a person: write a",
        ),
        (
            "discord:\n  guilds: []\n",
            "serve.yaml:2:11: 'guilds' in 'discord' needs at least 1 item; e.g. guilds: [111111111111111111]",
        ),
    ],
)
def test_each_wrong_value_is_one_message_that_shows_a_right_one(tmp_path: Path, text: str, expected: str) -> None:
    message = problem(tmp_path, text)
    assert message.startswith(expected)
    assert "\n" not in message and "item(s)" not in message  # not also "needs at least 1 item(s)"


def test_a_relative_sqlite_file_is_next_to_the_configuration_wherever_serve_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # as systemd starts it: not from the configuration's folder
    config = load_config(write(folder, "database: sqlite:///data/bot.db?mode=rwc\n" + DISCORD))
    assert config.database == f"sqlite:///{folder / 'data' / 'bot.db'}?mode=rwc"
    for kept in (f"sqlite:///{tmp_path / 'bot.db'}", "postgresql://facilitator@db.example.org/circles"):
        assert load_config(write(folder, f"database: {kept}\n" + DISCORD)).database == kept


@pytest.mark.parametrize(
    ("database", "expected"),
    [
        ("http://x", "http:// is not a database facilitator can use; write sqlite:///facilitator.db (a file next"),
        ("bot.db", "'bot.db' is not a database URL; for a SQLite file write sqlite:///bot.db (three slashes"),
        ("sqlite://bot.db", "a SQLite URL has three slashes before its file: write sqlite:///bot.db"),
        ("sqlite://", "sqlite:// with no file keeps everything in memory, lost when serve stops; name a file"),
        ("postgresql+psycopg2://ana:s3cret@db/c", "postgresql+psycopg2:// names a driver facilitator does not have"),
        ("postgresql://ana:s3cret@db:port/c", "this database URL cannot be read (a port must be digits;"),
    ],
)
def test_a_database_that_is_not_a_usable_url_is_a_mistake_at_its_line(
    tmp_path: Path, database: str, expected: str
) -> None:
    message = problem(tmp_path, f"database: {database}\n" + DISCORD)
    assert message.startswith(f"serve.yaml:1:11: 'database': {expected}")
    assert "s3cret" not in message  # a password in the URL is not printed
