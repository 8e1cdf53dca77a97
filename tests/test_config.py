"""Config overrides: parsed by the field's type; unknown keys and bad values are clear errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from sutskever.config import apply_overrides, from_dict, to_dict, valid_keys
from sutskever.errors import UserError


@dataclass(frozen=True)
class Inner:
    lr: float = 0.1
    steps: int = 10
    clip: float | None = None
    kind: Literal["sgd", "adam"] = "sgd"
    sizes: tuple[int, ...] = (5,)
    flag: bool = False
    name: str = "x"


@dataclass(frozen=True)
class Outer:
    train: Inner = field(default_factory=Inner)
    seed: int = 0


def test_values_parsed_by_field_type() -> None:
    cfg = apply_overrides(Outer(), ["train.lr=0.5", "train.steps=1e3", "train.clip=2",
                                    "train.kind=adam", "train.sizes=5,10,20", "train.flag=true",
                                    "train.name=hull", "seed=3"])
    assert cfg.train == Inner(lr=0.5, steps=1000, clip=2.0, kind="adam", sizes=(5, 10, 20),
                              flag=True, name="hull")
    assert cfg.seed == 3
    assert apply_overrides(cfg, ["train.clip=none"]).train.clip is None
    assert Outer().train.lr == 0.1  # frozen: the original is untouched


def test_programmatic_overrides_accept_python_values() -> None:
    cfg = apply_overrides(Outer(), {"train.sizes": (5, 6), "train.lr": 1.0})
    assert cfg.train.sizes == (5, 6) and cfg.train.lr == 1.0


@pytest.mark.parametrize("override, message", [
    ("train.lrr=1", "unknown config key 'train.lrr'; valid keys: train.lr, train.steps"),
    ("model.hidden=3", "unknown config key 'model.hidden'"),
    ("train.steps=ten", "train.steps='ten' is not an integer"),
    ("train.steps=1.5", "not an integer"),
    ("train.lr=fast", "train.lr='fast' is not a number"),
    ("train.kind=rmsprop", "is not one of: sgd, adam"),
    ("train.flag=maybe", "is not a boolean"),
    ("train=3", "'train' is a group"),
    ("seed.x=1", "'seed' has no sub-keys"),
    ("train.lr", "must look like key=value"),
])
def test_bad_overrides_are_one_line_errors(override: str, message: str) -> None:
    with pytest.raises(UserError) as e:
        apply_overrides(Outer(), [override])
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_round_trip_through_dict() -> None:
    cfg = apply_overrides(Outer(), ["train.sizes=3,4", "train.clip=1.5"])
    assert from_dict(Outer, to_dict(cfg)) == cfg
    assert valid_keys(cfg)[:2] == ["train.lr", "train.steps"]
    with pytest.raises(UserError, match="'bogus' is not a field"):
        from_dict(Outer, {"bogus": 1})


@dataclass(frozen=True)
class Checked:
    p: float = 0.5

    def __post_init__(self) -> None:
        if not 0 <= self.p < 1:
            raise ValueError(f"p must be in [0, 1), got {self.p}")


def test_a_configs_own_checks_become_user_errors() -> None:
    with pytest.raises(UserError, match=r"p=1.5: p must be in \[0, 1\), got 1.5"):
        apply_overrides(Checked(), ["p=1.5"])
