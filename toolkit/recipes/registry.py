"""Named experiments and suites: register, get, list with wildcards, expand names on a command line."""
from __future__ import annotations

import difflib
import fnmatch
from dataclasses import replace

from ..errors import RegistryError
from . import components
from .recipe import Recipe

# The package whose import registers the shipped experiments: the repository's experiments/ folder, installed under a
# name of its own so that a user's folder or module called `experiments` never shadows it (setup.py).
NAMED = "toolkit_experiments"
ROOT = "baseline"  # the reference of every recipe that names no parent

_experiments: dict[str, Recipe] = {}
_suites: dict[str, tuple[str, ...]] = {}
_origins: dict[str, str] = {}   # where each experiment or suite not shipped was registered: the user's file
_loaded = False   # whether load_named has run: every lookup below runs it first, whichever module was imported


def load_named() -> None:
    """Register the named experiments, as the launcher does: the shipped ones (the NAMED package, where it can be
    imported: a plugin loaded by its name, so the registry depends on no experiment), then the user's installed
    packages (entry points) and TOOLKIT_EXPERIMENTS (recipes/components.py)."""
    global _loaded
    import importlib
    import importlib.util
    if _loaded:
        return
    _loaded = True
    if importlib.util.find_spec(NAMED) is not None:
        importlib.import_module(NAMED)
    components.load_installed()


def _take() -> tuple:
    return dict(_experiments), dict(_suites), dict(_origins)


def _put(state: tuple) -> None:
    for live, saved in zip((_experiments, _suites, _origins), state):
        live.clear()
        live.update(saved)


def origin(name: str) -> str:
    """The file (or notebook) of the user's that registered `name`; "" for a shipped experiment or suite."""
    _named()
    return _origins.get(name, "")


def _caller_origin() -> str:
    """Where the code that registers something is: "" for the shipped experiments, else the user's file."""
    import sys
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back
    module = frame.f_globals.get("__name__", "") if frame is not None else ""
    if module == NAMED or module.startswith(NAMED + "."):
        return ""
    return components.loading_now() or frame.f_globals.get("__file__") or "a notebook"


def _named() -> None:
    if not _loaded:
        load_named()


def register(recipe: Recipe, parent: Recipe | str | None = None) -> Recipe:
    """Add `recipe` under its own name and return it; a name already taken, or an unknown parent, is an error.

    `parent` (a recipe or a name) sets the recipe it is compared with; `derive` sets it for you.
    """
    if parent is not None:
        recipe = replace(recipe, parent=parent if isinstance(parent, str) else parent.name)
    if recipe.name in _experiments or recipe.name in _suites:
        raise RegistryError(f"An experiment or suite named {recipe.name!r} is already registered; pick another name.")
    if recipe.parent and recipe.parent not in _experiments:
        raise RegistryError(f"Experiment {recipe.name!r} names the parent {recipe.parent!r}, which is not registered; "
                            f"register the parent first.")
    _experiments[recipe.name] = recipe
    if where := _caller_origin():
        _origins[recipe.name] = where
    return recipe


def derive(parent: Recipe, name: str, notes: str = "", **differences) -> Recipe:
    """A new recipe: `parent` with `differences`, compared with `parent` (its reference) in every table."""
    return replace(parent, name=name, parent=parent.name, notes=notes, **differences)


def reference_name(recipe: Recipe, against: str | None = None) -> str:
    """The name of the recipe `recipe` is compared with: `against` if given, else its parent, else the baseline."""
    return against or recipe.parent or ROOT


def register_suite(name: str, *members: str) -> str:
    """A suite is a name for a group of experiments (names or wildcard patterns), run in the order given."""
    if name in _experiments or name in _suites:
        raise RegistryError(f"An experiment or suite named {name!r} is already registered; pick another name.")
    _suites[name] = tuple(members)
    if where := _caller_origin():
        _origins[name] = where
    return name


def _unknown(name: str, kind: str = "experiment") -> RegistryError:
    close = difflib.get_close_matches(name, [*_experiments, *_suites], n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return RegistryError(f"Unknown {kind} {name!r}.{hint} `toolkit list` shows every experiment and suite.")


def get(name: str) -> Recipe:
    """The registered recipe called `name`; an unknown name raises with close matches suggested."""
    _named()
    try:
        return _experiments[name]
    except KeyError:
        raise _unknown(name) from None


def registered(name: str) -> Recipe | None:
    """The registered recipe called `name`, or None (a run of a recipe that was never registered, or no longer is)."""
    _named()
    return _experiments.get(name)


def list_experiments(pattern: str = "*") -> list[str]:
    """Registered experiment names matching a shell-style wildcard (`mixup*`), sorted."""
    _named()
    return sorted(n for n in _experiments if fnmatch.fnmatchcase(n, pattern))


def list_suites(pattern: str = "*") -> dict[str, tuple[str, ...]]:
    _named()
    return {n: m for n, m in sorted(_suites.items()) if fnmatch.fnmatchcase(n, pattern)}


def expand(names: list[str] | str) -> list[Recipe]:
    """Expand experiment names, wildcard patterns and suite names into recipes, each once, in order."""
    _named()
    out: dict[str, Recipe] = {}
    for name in [names] if isinstance(names, str) else names:
        if name in _suites:
            recipes = expand(list(_suites[name]))
        elif any(c in name for c in "*?["):
            matched = list_experiments(name)
            if not matched:
                raise RegistryError(f"No experiment matches the pattern {name!r}. `toolkit list` shows them all.")
            recipes = [_experiments[n] for n in matched]
        else:
            recipes = [get(name)]
        for r in recipes:
            out.setdefault(r.name, r)
    return list(out.values())


components.ROLLBACK.append((_take, _put))   # a user file that fails to load leaves no experiment behind
