"""Tests for the prompt banks in prompts/banks and the rotation in facilitator.prompts."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from facilitator.prompts import (
    PROMPTS_DIR_ENV,
    BankError,
    PromptBank,
    PromptItem,
    choose_prompt,
    clear_cache,
    load_bank,
    load_banks,
    prompts_dir,
    resolve_prompt,
)

PROJECT = Path(__file__).resolve().parent.parent
BANKS_DIR = PROJECT / "prompts" / "banks"

MINIMUM = {
    "check-in": 10,
    "check-out": 10,
    "reflect": 10,
    "revitalise": 10,
    "rebuild": 10,
    "education": 8,
    "health": 8,
    "social-care": 8,
    "criminal-justice": 8,
}

# A closed question ("Do you...?", "Is there...?") invites yes or no; circles ask open ones.
CLOSED_OPENING = re.compile(r"^(is|are|do|does|did|have|has|can|could|would|will|should|was|were)\b", re.IGNORECASE)


def make_bank(count: int, name: str = "test") -> PromptBank:
    return PromptBank(
        bank=name,
        title="Test",
        description="A bank for tests.",
        prompts=[PromptItem(id=f"p{i}", text=f"Question {i}?") for i in range(count)],
    )


def run(bank: PromptBank, draws: int, seed: int | None = None, history: list[str] | None = None) -> list[str]:
    """Draw ``draws`` prompts in a row, as a group would over many circles."""
    used = list(history or [])
    for _ in range(draws):
        used.append(choose_prompt(bank, used, rng_seed=seed).id)
    return used


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


# --- the shipped banks -------------------------------------------------------------------


def test_prompts_dir_is_the_project_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PROMPTS_DIR_ENV, raising=False)
    assert prompts_dir() == PROJECT / "prompts"


def test_prompts_dir_can_be_overridden(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(PROMPTS_DIR_ENV, str(tmp_path))
    assert prompts_dir() == tmp_path


def test_every_bank_file_loads_and_is_named_after_its_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PROMPTS_DIR_ENV, raising=False)
    banks = load_banks()
    assert set(banks) == {path.stem for path in BANKS_DIR.glob("*.yaml")}
    for name, bank in banks.items():
        assert bank.bank == name
        assert load_bank(name) == bank


@pytest.mark.parametrize(("name", "minimum"), sorted(MINIMUM.items()))
def test_required_bank_has_enough_prompts(name: str, minimum: int) -> None:
    bank = load_bank(name, BANKS_DIR)
    assert len(bank.prompts) >= minimum, f"{name} has {len(bank.prompts)} prompts, needs {minimum}"


@pytest.mark.parametrize("name", sorted(MINIMUM))
def test_prompts_are_single_open_questions(name: str) -> None:
    bank = load_bank(name, BANKS_DIR)
    texts = [item.text for item in bank.prompts]
    assert len(set(texts)) == len(texts), f"{name} repeats a question"
    for item in bank.prompts:
        assert item.text.endswith("?"), f"{name}/{item.id} is not a question"
        assert item.text.count("?") == 1, f"{name}/{item.id} asks more than one question"
        assert not CLOSED_OPENING.match(item.text), f"{name}/{item.id} is a closed question"
        assert item.text == item.text.strip() and "\n" not in item.text


def test_prompt_ids_are_unique_across_the_three_rs() -> None:
    """Ids are unique within a bank by rule; across banks too, so a history line is unambiguous."""
    seen: dict[str, str] = {}
    for name, bank in load_banks(BANKS_DIR).items():
        for prompt_id in bank.ids:
            assert prompt_id not in seen, f"{prompt_id} is in both {seen[prompt_id]} and {name}"
            seen[prompt_id] = name


# --- bank validation ---------------------------------------------------------------------


def test_duplicate_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="more than once"):
        PromptBank(
            bank="x",
            title="X",
            description="X.",
            prompts=[PromptItem(id="a", text="One?"), PromptItem(id="a", text="Two?")],
        )


@pytest.mark.parametrize("bad", ["Arrive", "arrive weather", "-arrive", "arrivé", ""])
def test_ids_must_be_lower_case_slugs(bad: str) -> None:
    with pytest.raises(ValueError):
        PromptItem(id=bad, text="A question?")


def test_unknown_keys_are_refused(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text(
        "bank: x\ntitle: X\ndescription: X.\nprompt:\n  - id: a\n    text: One?\n", encoding="utf-8"
    )
    with pytest.raises(BankError, match=r"x\.yaml") as caught:
        load_bank("x", tmp_path)
    assert "prompt" in str(caught.value)


def test_bank_name_must_equal_file_stem(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text(
        "bank: y\ntitle: X\ndescription: X.\nprompts:\n  - id: a\n    text: One?\n", encoding="utf-8"
    )
    with pytest.raises(BankError, match="must equal the file name"):
        load_bank("x", tmp_path)


def test_missing_bank_names_the_file_and_suggests(tmp_path: Path) -> None:
    with pytest.raises(BankError) as caught:
        load_bank("chek-in", BANKS_DIR)
    message = str(caught.value)
    assert "chek-in.yaml" in message
    assert "did you mean check-in" in message


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("bank: x\n  title: : :\n", encoding="utf-8")
    with pytest.raises(BankError, match=r"x\.yaml: not valid YAML"):
        load_bank("x", tmp_path)


def test_load_banks_reloads_an_edited_bank(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    head = "bank: x\ntitle: X\ndescription: X.\nprompts:\n"
    path.write_text(head + "  - id: a\n    text: One?\n", encoding="utf-8")
    assert load_banks(tmp_path)["x"].ids == ["a"]
    assert load_banks(tmp_path) is load_banks(tmp_path)
    path.write_text(head + "  - id: a\n    text: One?\n  - id: b\n    text: Two?\n", encoding="utf-8")
    assert load_banks(tmp_path)["x"].ids == ["a", "b"]


def test_env_override_is_used_by_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "banks").mkdir()
    (tmp_path / "banks" / "mine.yaml").write_text(
        "bank: mine\ntitle: Mine\ndescription: Mine.\nprompts:\n  - id: a\n    text: One?\n", encoding="utf-8"
    )
    monkeypatch.setenv(PROMPTS_DIR_ENV, str(tmp_path))
    assert list(load_banks()) == ["mine"]
    assert load_bank("mine").ids == ["a"]


# --- rotation ----------------------------------------------------------------------------


def test_without_a_seed_prompts_come_in_bank_order() -> None:
    bank = make_bank(4)
    assert run(bank, 4) == ["p0", "p1", "p2", "p3"]


@pytest.mark.parametrize("seed", [None, 0, 1, 7, 2026])
@pytest.mark.parametrize("size", [2, 3, 5, 12])
def test_no_repeat_until_the_bank_is_used_up(seed: int | None, size: int) -> None:
    bank = make_bank(size)
    drawn = run(bank, size * 3, seed=seed)
    for cycle in range(3):
        chunk = drawn[cycle * size : (cycle + 1) * size]
        assert sorted(chunk) == sorted(bank.ids), f"cycle {cycle + 1} repeated a prompt: {chunk}"


@pytest.mark.parametrize("seed", [None, 0, 1, 7, 2026])
@pytest.mark.parametrize("size", [2, 3, 5, 12])
def test_never_the_same_prompt_twice_in_a_row(seed: int | None, size: int) -> None:
    drawn = run(make_bank(size), size * 3, seed=seed)
    for before, after in itertools.pairwise(drawn):
        assert before != after, drawn


def test_cycle_boundary_skips_the_last_prompt() -> None:
    bank = make_bank(3)
    # The previous cycle ended on p0 (p1, p2, p0): the new one starts with p1, not p0.
    assert choose_prompt(bank, ["p1", "p2", "p0"]).id == "p1"


def test_a_one_prompt_bank_repeats_its_only_prompt() -> None:
    assert run(make_bank(1), 3) == ["p0", "p0", "p0"]


def test_same_seed_same_prompts() -> None:
    bank = make_bank(10)
    assert run(bank, 30, seed=42) == run(bank, 30, seed=42)


def test_seed_changes_the_order() -> None:
    bank = make_bank(10)
    orders = {tuple(run(bank, 10, seed=seed)) for seed in range(5)}
    assert len(orders) > 1
    assert any(order != tuple(bank.ids) for order in orders)


def test_seeded_choice_is_a_pure_function_of_history() -> None:
    bank = make_bank(6)
    history = ["p3", "p1"]
    assert choose_prompt(bank, history, rng_seed=5) == choose_prompt(bank, list(history), rng_seed=5)
    assert choose_prompt(bank, history, rng_seed=5).id not in history


def test_unknown_history_ids_are_ignored() -> None:
    bank = make_bank(3)
    assert choose_prompt(bank, ["gone", "p0", "retired", "p1"]).id == "p2"
    # A history of only removed prompts is a fresh start.
    assert choose_prompt(bank, ["gone", "retired"]).id == "p0"
    # Unknown ids neither fill a cycle nor count as "the last prompt".
    assert choose_prompt(bank, ["p0", "p1", "p2", "gone"]).id == "p0"
    assert choose_prompt(bank, ["p1", "p2", "p0", "gone"]).id == "p1"


def test_a_prompt_pinned_twice_does_not_break_the_cycle() -> None:
    bank = make_bank(3)
    # p0 was used twice within one cycle (a script pinned it); p1 and p2 are still owed.
    assert choose_prompt(bank, ["p0", "p0"]).id == "p1"
    assert run(bank, 2, history=["p0", "p0"])[2:] == ["p1", "p2"]


def test_a_new_prompt_added_mid_cycle_is_offered() -> None:
    history = run(make_bank(3), 2)  # p0, p1
    grown = make_bank(4)
    assert run(grown, 2, history=history)[2:] == ["p2", "p3"]


def test_shipped_banks_rotate_through_every_prompt() -> None:
    for bank in load_banks(BANKS_DIR).values():
        drawn = run(bank, len(bank.prompts) * 3, seed=11)
        size = len(bank.prompts)
        for cycle in range(3):
            assert sorted(drawn[cycle * size : (cycle + 1) * size]) == sorted(bank.ids)


# --- resolving a script's prompt reference -----------------------------------------------


def test_resolve_a_pinned_prompt() -> None:
    item = resolve_prompt("rebuild", "rebuild-repair", directory=BANKS_DIR)
    assert item.id == "rebuild-repair"


def test_resolve_rotates_when_not_pinned() -> None:
    first = load_bank("check-in", BANKS_DIR).prompts[0]
    assert resolve_prompt("check-in", directory=BANKS_DIR) == first
    assert resolve_prompt("check-in", history=[first.id], directory=BANKS_DIR) != first


def test_resolve_unknown_bank_or_id_is_a_bank_error() -> None:
    with pytest.raises(BankError, match="no prompt bank 'nope'"):
        resolve_prompt("nope", directory=BANKS_DIR)
    with pytest.raises(BankError, match="has no prompt 'nope'"):
        resolve_prompt("rebuild", "nope", directory=BANKS_DIR)
