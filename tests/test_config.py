"""The serve configuration: what a coordinator writes, and what they are told when it is wrong."""

from __future__ import annotations

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
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, text))
    return str(raised.value)


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
