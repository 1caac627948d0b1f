"""The one grammar of settings (lewm_agent.settings): typed values, one unknown-field check, help from the docs,
the same in `lewm` and compare.py."""

import dataclasses
from dataclasses import dataclass
from typing import Literal

import pytest

from lewm_agent.cli import build_parser, main
from lewm_agent.config import CEMConfig, GradConfig, ModelConfig, MPPIConfig, PlanConfig, PolicyConfig, TrainConfig
from lewm_agent.settings import apply_settings, check_name, fields_of, help_text, parse_settings, parse_value

CONFIGS = [ModelConfig, TrainConfig, PlanConfig, CEMConfig, MPPIConfig, GradConfig, PolicyConfig]


@dataclass
class Example:
    """A config with every kind of field the grammar reads."""

    count: int = 1
    """How many."""
    rate: float = 0.5
    """How fast, per second."""
    flag: bool = False
    """Whether."""
    name: str = "x"
    """What."""
    mode: Literal["a", "b"] = "a"
    """Which."""
    limit: int | None = None
    """Up to this many (none: no limit)."""
    sizes: tuple[int, ...] = (1, 2)
    """Each size."""


@pytest.mark.parametrize("text, value", [("true", True), ("Yes", True), ("ON", True), ("1", True),
                                         ("false", False), ("no", False), ("Off", False), ("0", False)])
def test_bool_spellings(text, value):
    assert parse_settings(Example, [f"flag={text}"]) == {"flag": value}


def test_values_are_typed_by_the_field():
    got = parse_settings(Example, ["count=20_000", "rate=1e-3", "name=cpu", "mode=B", "limit=none", "sizes=3,4"])
    assert got == {"count": 20000, "rate": 1e-3, "name": "cpu", "mode": "b", "limit": None, "sizes": (3, 4)}
    assert parse_settings(Example, ["count=1e5", "limit=7", 'name="quoted"', "sizes=[5, 6]"]) == {
        "count": 100000, "limit": 7, "name": "quoted", "sizes": (5, 6)}
    assert parse_settings(Example, ["count=1", "count=2"]) == {"count": 2}, "the later setting wins"
    assert parse_value('{"a": 1}', object) == {"a": 1} and parse_value("abc", object) == "abc"  # untyped: JSON-ish


@pytest.mark.parametrize("item, message", [
    ("count=abc", r"Example.count expects int, got 'abc'"),
    ("count=1.5", r"Example.count expects int, got '1.5'"),
    ("rate=fast", r"Example.rate expects float"),
    ("flag=ture", r"Example.flag expects true or false, got 'ture'"),
    ("limit=lots", r"Example.limit expects int"),
    ("count", r"'count' is not KEY=VALUE"),
    ("conut=3", r"Example has no field 'conut'; did you mean 'count'\?"),
    ("zzz=3", r"Example has no field 'zzz'; known: count, rate, flag, name, mode, limit, sizes\."),
])
def test_bad_settings_name_the_field_and_the_fix(item, message):
    with pytest.raises(ValueError, match=message):
        parse_settings(Example, [item])


def test_apply_checks_each_item_with_the_dataclass_and_names_it():
    cfg = apply_settings(TrainConfig(), ["lr=1e-3", "stream=on", "cpu_bf16=true"], "--train")
    assert (cfg.lr, cfg.stream, cfg.cpu_bf16) == (1e-3, "on", "on") and TrainConfig().lr == 5e-5
    with pytest.raises(ValueError, match=r"^--train steps=0: TrainConfig.steps must be >= 1, got 0\.$"):
        apply_settings(TrainConfig(), ["steps=0"], "--train")
    with pytest.raises(ValueError, match=r"^--plan planner=cme: PlanConfig.planner='cme': choose one of \['cem'"):
        apply_settings(PlanConfig(), ["planner=cme"], "--plan")
    with pytest.raises(ValueError, match=r"TrainConfig has no field 'lr_typo'; did you mean 'lr'\?"):
        apply_settings(TrainConfig(), ["lr_typo=1"], "--train")
    with pytest.raises(ValueError, match=r"ModelConfig has no field 'histroy'; did you mean 'history'\?"):
        check_name(ModelConfig, "histroy")


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_every_config_field_has_a_doc_and_is_in_the_help(cls):
    settings = fields_of(cls)
    assert [s.name for s in settings] == [f.name for f in dataclasses.fields(cls)]
    text = help_text(cls, "title")
    for s in settings:
        assert s.doc and s.summary, f"{cls.__name__}.{s.name} has no docstring"
        assert f"  {s.name}=" in text
        assert " ".join(s.summary.split()[:4]) in " ".join(text.split()), s.name


def test_lewm_help_lists_the_fields(capsys):
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices  # noqa: SLF001 - the subcommands' parsers
    train_help = sub["train"].format_help()
    for cls, flag in ((ModelConfig, "--model"), (TrainConfig, "--train"), (PlanConfig, "--plan")):
        assert f"{flag} KEY=VALUE ({cls.__name__}" in train_help
        assert all(f"  {f.name}=" in train_help for f in dataclasses.fields(cls))
    assert "cpu_bf16={auto,on,off}" in train_help and "same as --train batch_size=" in train_help
    assert "Optimiser steps in total. [2500]" in train_help  # the default preset's value
    assert "--plan KEY=VALUE (PlanConfig)" in sub["eval"].format_help()
    assert "  whiten_floor=float" in sub["policy"].format_help()


def test_alias_flags_are_settings_in_command_line_order(tmp_path, capsys):
    args = build_parser().parse_args(["train", "--data", "d.h5", "--out", "o", "--train", "steps=3", "--steps", "5",
                                      "--lr", "1e-3"])
    assert list(args.train) == ["steps=3", "steps=5", "lr=1e-3"]
    argv = ["train", "--data", str(tmp_path / "d.h5"), "--out", str(tmp_path / "o"), "--preset", "tiny"]
    assert main(argv + ["--steps", "abc"]) == 2
    assert capsys.readouterr().err.strip() == "error: --steps abc: TrainConfig.steps expects int, got 'abc'."
    assert main(argv + ["--model", "enc_readout=flat"]) == 2
    assert "--model enc_readout=flat: ModelConfig.enc_readout='flat': choose one of" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_compare_set_uses_the_same_grammar(capsys):
    from experiments import compare

    cfg = compare.apply_overrides(compare.make_config("smoke"), ["lewm.steps=1e3", "dreamerv3.sync_env=off",
                                                                 "sb3-ppo.learning_rate=3e-4", "lewm.preset=cpu"])
    assert cfg.budgets["lewm"] == {"preset": "cpu", "steps": 1000}
    assert cfg.budgets["dreamerv3"]["sync_env"] is False and cfg.budgets["sb3-ppo"]["learning_rate"] == 3e-4
    for item, message in [("lewm.stesp=5", r"--set lewm.stesp=5: the lewm budget \(Budget\) has no field 'stesp'; "
                                           r"did you mean 'steps'\?"),
                          ("dreamerv3.sync_env=maybe", r"Budget.sync_env expects true or false, got 'maybe'"),
                          ("random.steps=5", r"the random budget \(NoBudget\) has no field 'steps'; it takes none"),
                          ("lewn.steps=5", r"unknown method 'lewn'; did you mean 'lewm'")]:
        with pytest.raises(SystemExit, match=message):
            compare.apply_overrides(compare.make_config("smoke"), [item])
    assert "--set sb3-ppo.KEY=VALUE (PPOBudget" in compare.budget_help()
    assert "  timesteps=int" in compare.budget_help()
