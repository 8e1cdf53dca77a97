"""The recipe registry: `@register` a recipe class, `get(name)` it, `all()` of them."""

from __future__ import annotations

from sutskever.errors import UserError
from sutskever.recipes.base import Claim, Recipe, RecipeData, TrainConfig

__all__ = ["Claim", "Recipe", "RecipeData", "TrainConfig", "register", "get", "all"]

_REGISTRY: dict[str, Recipe] = {}


def register(cls: type[Recipe]) -> type[Recipe]:
    """Class decorator: instantiate the recipe and add it to the registry under `cls.name`."""
    if not cls.name or cls.name in _REGISTRY:
        raise ValueError(f"recipe name {cls.name!r} is empty or already registered")
    _REGISTRY[cls.name] = cls()
    return cls


def _load() -> None:
    # Importing a recipe module registers it. One line per paper.
    from sutskever.recipes import (  # noqa: F401
        alexnet,
        gpipe,
        gpt,
        inference_compute,
        order_matters,
        pointer_networks,
        rnn_regularization,
        scaling_laws,
        seq2seq,
        synthetic_data,
        weak_to_strong,
        weak_to_strong_text,
    )


def get(name: str) -> Recipe:
    _load()
    if name not in _REGISTRY:
        raise UserError(f"unknown recipe {name!r}; choose one of: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def all() -> list[Recipe]:  # noqa: A001 - the registry's public name, as in the design
    _load()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]
