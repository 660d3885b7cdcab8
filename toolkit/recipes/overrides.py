"""Overrides: `--set key=value` (and values from Python), checked against the Recipe's fields and their types."""
from __future__ import annotations

import ast
import difflib
import numbers
import os
import types
import typing
from dataclasses import fields, replace

import numpy as np

from ..errors import RecipeError
from .recipe import Recipe

def _checked(value, typ, key: str):
    """A Python value for a field of type `typ`, as given or converted without loss (an int for a float, a list for
    a tuple); anything else is a RecipeError, as a bad `key=value` text is."""
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        return None if value is None else _checked(value, next(a for a in args if a is not type(None)), key)
    ok = (isinstance(value, (bool, np.bool_)) if typ is bool else
          isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) if typ is float else
          isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)) if typ is int else
          isinstance(value, (str, os.PathLike)) if typ is str else
          isinstance(value, (tuple, list, str)) if typ == tuple[str, ...] else
          isinstance(value, (tuple, list)) if origin is tuple else True)
    if not ok:
        raise RecipeError(f"Bad value {value!r} for recipe key {key!r}: expected {_type_name(typ)}, got "
                          f"{type(value).__name__}.")
    if typ in (bool, int, float, str):
        return typ(value) if typ is not str else str(value)
    if typ == tuple[str, ...]:
        return tuple(value)
    if origin is tuple:
        return tuple(tuple(x) if isinstance(x, list) else x for x in value)
    return value


def is_number_field(key: str) -> bool:
    """Whether a recipe field holds a number (int or float, or None): a `--vary` list of it is separated by commas."""
    typ = typing.get_type_hints(Recipe).get(key)
    args = [a for a in typing.get_args(typ) if a is not type(None)]
    return typ in (int, float) or (len(args) == 1 and args[0] in (int, float))


def _parse(value: str, typ, key: str):
    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        if value.strip().lower() in ("none", "null", "", "auto"):
            return None
        return _parse(value, next(a for a in args if a is not type(None)), key)
    if typ is bool:
        low = value.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError("expected true or false")
    if typ in (int, float):
        return typ(value)
    if typ is str:
        return value
    if typ == tuple[str, ...]:   # callbacks, batch_tfms: `a, b(k=1)`; parsed and checked by the Recipe itself
        return value
    if origin is tuple:  # stages: a Python literal such as ((0.5, 0.5, 3e-3, 'one_cycle'), (1, 0.5, 1e-3, 'fine_tune'))
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise ValueError("expected a tuple of (size_scale, epoch_share, lr, how) stages, e.g. "
                             "((0.5, 0.5, 3e-3, 'one_cycle'), (1.0, 0.5, 1e-3, 'fine_tune'))") from None
        if isinstance(parsed, list):
            parsed = tuple(parsed)
        return tuple(tuple(x) if isinstance(x, list) else x for x in parsed)
    raise ValueError(f"unsupported type {typ}")


def pairs(overrides: dict | list[str] | None) -> dict:
    """`["lr=1e-3", "bs=32"]` (as on a command line) or a dict -> {key: value}; an item without `=` is an error."""
    if not overrides:
        return {}
    if isinstance(overrides, dict):
        return dict(overrides)
    out = {}
    for item in overrides:
        if "=" not in item:
            raise RecipeError(f"Override {item!r} is not of the form key=value (for example --set lr=1e-3).")
        k, v = item.split("=", 1)
        out[k.strip()] = v
    return out


def check_settings(settings, what: str) -> Recipe:
    """`settings` (key=value strings or a dict) checked as recipe fields, outside any recipe: the context of a
    sweep, a grid's values. An error names `what` (e.g. "--set valid_pct=2"), not a recipe the user did not name."""
    try:
        return apply_overrides(Recipe(), settings)
    except RecipeError as e:
        if e.detail == str(e):   # an unknown key, a value of the wrong type: said without a recipe's name already
            raise
        raise RecipeError(f"{what} is invalid: {e.detail}") from None


def apply_overrides(recipe: Recipe, overrides: dict[str, str] | list[str]) -> Recipe:
    """Return `recipe` with `key=value` overrides applied; unknown keys and bad values raise RecipeError."""
    overrides = pairs(overrides)
    hints = typing.get_type_hints(Recipe)
    known = [f.name for f in fields(Recipe)]
    changes = {}
    for key, value in overrides.items():
        if key not in hints:
            close = difflib.get_close_matches(key, known, n=3)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise RecipeError(f"Unknown recipe key {key!r}.{hint} Known keys: {', '.join(known)}.")
        if not isinstance(value, str):
            changes[key] = _checked(value, hints[key], key)
            continue
        try:
            changes[key] = _parse(value, hints[key], key)
        except (ValueError, SyntaxError, TypeError) as e:
            raise RecipeError(f"Bad value {value!r} for recipe key {key!r} (type {_type_name(hints[key])}): {e}.") from None
    return replace(recipe, **changes)


def _type_name(typ) -> str:
    return getattr(typ, "__name__", None) or str(typ).replace("typing.", "")
