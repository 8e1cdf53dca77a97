"""Frozen dataclass configs and `--set a.b=value` overrides parsed by the field's type.

A recipe's config is a tree of frozen dataclasses. `apply_overrides(cfg, ["train.lr=0.5"])`
returns a new config; the value is parsed by the annotated type of the field (int, float, bool,
str, `X | None`, `tuple[X, ...]` written as comma-separated values, `Literal[...]`). An unknown
key or a value that does not parse is a `UserError` that lists what is valid.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from sutskever.errors import UserError

_NONE_WORDS = {"none", "null", ""}
_TRUE_WORDS = {"true", "1", "yes", "on"}
_FALSE_WORDS = {"false", "0", "no", "off"}


def _field_types(cfg: Any) -> dict[str, Any]:
    return typing.get_type_hints(type(cfg))


def valid_keys(cfg: Any, prefix: str = "") -> list[str]:
    """All dotted leaf keys of a config tree, e.g. ['model.hidden', 'train.lr', ...]."""
    keys = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            keys += valid_keys(value, f"{prefix}{f.name}.")
        else:
            keys.append(prefix + f.name)
    return keys


def parse_value(text: str, tp: Any, key: str) -> Any:
    """Parse `text` as a value of type `tp` (the field's annotation)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and text.strip().lower() in _NONE_WORDS:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return parse_value(text, arg, key)
            except UserError as e:
                errors.append(str(e))
        raise UserError(errors[0] if errors else f"{key}: cannot parse {text!r}")
    if origin is typing.Literal:
        for choice in args:
            if str(choice) == text:
                return choice
        raise UserError(f"{key}={text!r} is not one of: {', '.join(map(str, args))}")
    if origin is tuple:
        item = args[0] if args else str
        parts = [p for p in text.replace(" ", "").split(",") if p != ""]
        return tuple(parse_value(p, item, key) for p in parts)
    if tp is bool:
        word = text.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
        raise UserError(f"{key}={text!r} is not a boolean; use true or false")
    if tp is int:
        try:
            return int(text)
        except ValueError:
            try:
                as_float = float(text)  # allow 1e6
            except ValueError:
                raise UserError(f"{key}={text!r} is not an integer") from None
            if as_float.is_integer():
                return int(as_float)
            raise UserError(f"{key}={text!r} is not an integer") from None
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise UserError(f"{key}={text!r} is not a number") from None
    if tp is str:
        return text
    raise UserError(f"{key}: values of type {tp} cannot be set from the command line")


def _set(cfg: Any, path: list[str], value: Any, full_key: str, root: Any) -> Any:
    names = [f.name for f in dataclasses.fields(cfg)]
    head = path[0]
    if head not in names:
        raise UserError(
            f"unknown config key {full_key!r}; valid keys: {', '.join(valid_keys(root))}"
        )
    current = getattr(cfg, head)
    if len(path) == 1:
        if dataclasses.is_dataclass(current):
            first = dataclasses.fields(current)[0].name
            raise UserError(f"{full_key!r} is a group; set one of its keys, "
                            f"e.g. {full_key}.{first}")
        tp = _field_types(cfg)[head]
        if isinstance(value, str) and tp is not str:
            value = parse_value(value, tp, full_key)
        try:  # a config's own checks (__post_init__) reject values its type admits
            return dataclasses.replace(cfg, **{head: value})
        except (ValueError, TypeError) as e:
            raise UserError(f"{full_key}={value!r}: {e}") from None
    if not dataclasses.is_dataclass(current):
        raise UserError(f"unknown config key {full_key!r}: {head!r} has no sub-keys")
    return dataclasses.replace(cfg, **{head: _set(current, path[1:], value, full_key, root)})


def apply_overrides(cfg: Any, overrides: Iterable[str] | Mapping[str, Any]) -> Any:
    """Return `cfg` with each `key=value` override applied (strings parsed by the field type)."""
    if isinstance(overrides, Mapping):
        items = list(overrides.items())
    else:
        items = [_split(o) for o in overrides]
    for key, value in items:
        cfg = _set(cfg, key.split("."), value, key, cfg)
    return cfg


def _split(override: str) -> tuple[str, str]:
    if "=" not in override:
        raise UserError(f"override {override!r} must look like key=value, e.g. train.lr=0.5")
    key, value = override.split("=", 1)
    return key.strip(), value.strip()


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config tree (tuples become lists)."""
    return dataclasses.asdict(cfg)


def from_dict(cls: type, data: Mapping[str, Any]) -> Any:
    """Rebuild a config of class `cls` from `to_dict` output; unknown keys are an error."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    names = {f.name for f in dataclasses.fields(cls)}
    for key, value in data.items():
        if key not in names:
            raise UserError(f"config key {key!r} is not a field of {cls.__name__}")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            value = from_dict(tp, value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)
