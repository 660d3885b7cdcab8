"""Your own code in a recipe: callbacks, losses, models, optimizers and batch transforms, registered by name (as timm
registers models) and named by a recipe's fields, with literal keyword arguments: `callbacks=("clip(max_norm=0.5)",)`.

    @toolkit.register_callback("count_batches")
    def count_batches(every: int = 1):
        return CountBatches(every)

A name in a recipe is parsed (`ast`, never evaluated), checked against its factory's signature before anything
trains, and written in one canonical form into the config id. The code a recipe names is part of its identity:
`with_code` records each component's name and a hash of its code (`identity`) in the recipe's `code` field, so a
change to the code is another config id and a run is never replayed with other code than it ran.

Only code the user runs is run: files given to `load` (the launcher's --experiments, TOOLKIT_EXPERIMENTS, the
`toolkit.experiments` entry points) and the user's own imports. A record names code by name and hash only.
Nothing here imports torch: the factories are called by the learner (toolkit/train/learner.py).
"""
from __future__ import annotations

import ast
import difflib
import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import sys
import sysconfig
import textwrap
import traceback
import types
from dataclasses import dataclass
from pathlib import Path

from ..errors import RecipeError, ToolkitError
from .vocabulary import OPTIMIZERS

# Each kind of component, the recipe field that names it, and what its factory is called with besides the
# recipe's keyword arguments.
KINDS = {
    "callback": "callbacks",    # factory(**kw) -> a fastai Callback (or a list of them)
    "loss": "loss",             # factory(**kw) -> a loss function: loss(pred, target) -> a scalar
    "model": "arch",            # factory(n_out, **kw) -> an nn.Module with n_out outputs
    "optimizer": "opt",         # factory(params, lr, **kw) -> a fastai Optimizer, as fastai's SGD and Adam are
    "batch_tfm": "batch_tfms",  # factory(**kw) -> callable(x) -> x: a training batch, after normalization
}
POSITIONAL = {"model": ("n_out",), "optimizer": ("params", "lr")}
ENTRY_POINTS = "toolkit.experiments"   # the entry-point group of installed packages of experiments
ENV = "TOOLKIT_EXPERIMENTS"            # files (or modules) joined by os.pathsep, loaded with the named experiments
HASH_CHARS = 12


@dataclass
class Component:
    """A registered factory: its kind and name, where it was registered from, and, on a Ray worker (where its source
    cannot be read), the identity and source its driver computed."""
    kind: str
    name: str
    factory: object
    origin: str                       # the file (or module) that registered it
    fixed: tuple[str, str] | None = None
    memo: tuple | None = None         # (what runs, identity, source): read once while the same code runs

    def identity(self) -> str:
        """A hash of the factory's code and of the user's own code it uses (see `code_text`)."""
        return self._known()[0]

    def source(self) -> str:
        """The source text of the factory and of the user's own functions and classes it uses: what a run keeps."""
        return self._known()[1]

    def _known(self) -> tuple[str, str]:
        """(identity, source), read from the source files once for the code that runs: an edit of the file on disk
        while a sweep runs changes nothing; a cell run again (new objects) is read again."""
        if self.fixed:
            return self.fixed
        running = _running(self.factory)
        if self.memo is None or self.memo[0] != running:
            text = code_text(self.factory)
            self.memo = (running, hashlib.sha1(text.encode()).hexdigest()[:HASH_CHARS],
                         "\n\n".join(_sources(self.factory)))
        return self.memo[1], self.memo[2]


_registry: dict[tuple[str, str], Component] = {}
_loading: list[str] = []        # the user's file being loaded now (`load`), innermost last; the registry reads it
_from_files: dict[tuple[str, str], str] = {}   # components registered while loading a file: by which file


def register_component(kind: str, name: str, log=None):
    """A decorator that registers a factory of `kind` under `name`. The same name again with the same code does
    nothing (a notebook cell run twice); with other code it replaces the old one and says so (an edited cell);
    from two files the launcher loads, it is an error."""
    if kind not in KINDS:
        raise ToolkitError(f"Unknown kind of component {kind!r}; the kinds are {', '.join(KINDS)}.")
    if not (isinstance(name, str) and name.isidentifier()):
        raise ToolkitError(f"A {kind} needs a name that is a Python identifier, such as 'focal' (got {name!r}).")
    if (kind == "optimizer" and name in OPTIMIZERS) or (kind == "model" and _builtin_arch(name)):
        raise ToolkitError(f"{name!r} is the toolkit's own {kind} (fastai's); give yours another name, such as "
                           f"'my_{name}', so that recipes naming {name!r} keep meaning fastai's.")

    def register(factory):
        if not callable(factory):
            raise ToolkitError(f"register_{kind}({name!r}) decorates a factory: a function or a class (got "
                               f"{type(factory).__name__}).")
        origin = _loading[-1] if _loading else _origin_of(factory)
        new = Component(kind, name, factory, origin)
        old = _registry.get((kind, name))
        key = (kind, name)
        if _loading and key in _from_files and _from_files[key] != origin:
            raise ToolkitError(f"The {kind} {name!r} is registered by two files, {_from_files[key]} and {origin}; "
                               f"rename one of them.")
        if old is not None and old.factory is not factory:
            if old.identity() != new.identity():
                (log or _say)(f"note: the {kind} {name!r} is registered again with other code; the new code replaces "
                              f"the old one (recipes that name it get another config id).")
            else:
                new = Component(kind, name, factory, old.origin)   # the same code: nothing changes
        _registry[key] = new
        if _loading:
            _from_files[key] = origin
        return factory
    return register


def _builtin_arch(name: str) -> bool:
    """Whether `name` is an architecture the toolkit builds itself (fastai's xresnets, squeezenet, timm's)."""
    return name.startswith(("xresnet", "xse_resnext", "timm")) or name == "squeezenet"


def register_callback(name: str):
    """`@register_callback("name")` on a factory returning a fastai Callback: recipes name it in `callbacks`."""
    return register_component("callback", name)


def register_loss(name: str):
    """`@register_loss("name")` on a factory returning a loss function: recipes name it in `loss`."""
    return register_component("loss", name)


def register_model(name: str):
    """`@register_model("name")` on a factory `(n_out, **kw) -> nn.Module`: recipes name it in `arch`."""
    return register_component("model", name)


def register_optimizer(name: str):
    """`@register_optimizer("name")` on a factory `(params, lr, **kw) -> fastai Optimizer`: recipes name it in `opt`."""
    return register_component("optimizer", name)


def register_batch_tfm(name: str):
    """`@register_batch_tfm("name")` on a factory returning `f(x) -> x` for training batches: named in `batch_tfms`."""
    return register_component("batch_tfm", name)


def _say(line: str) -> None:
    print(line, file=sys.stderr)


def registered(kind: str) -> list[str]:
    return sorted(n for k, n in _registry if k == kind)


def get(kind: str, name: str) -> Component | None:
    return _registry.get((kind, name))


# --- a component named in a recipe: `name` or `name(key=literal, ...)` -------------------------------------------

def parse(text: str, field: str) -> tuple[str, dict]:
    """(name, keyword arguments) of a component as a recipe names it; anything but a name or a call of one with
    literal keyword values is a ValueError. Parsed, never evaluated."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise ValueError(f"{field}: {text!r} is not a name or a call such as name(key=0.5)") from None
    if isinstance(node, ast.Name):
        return node.id, {}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        if node.args:
            raise ValueError(f"{field}: {text!r} passes positional arguments; name each one, as "
                             f"{node.func.id}(key=value)")
        kwargs = {}
        for kw in node.keywords:
            if kw.arg is None:
                raise ValueError(f"{field}: {text!r} unpacks a dict; write each keyword argument out")
            try:
                value = ast.literal_eval(kw.value)
                _stable(value)   # a dict with an unhashable key and the like fail here
            except (ValueError, TypeError, SyntaxError):
                raise ValueError(f"{field}: the value of {kw.arg} in {text!r} is not a literal (a number, text, "
                                 f"True/False/None, or a tuple, list, set or dict of them); nothing in a recipe is "
                                 f"evaluated") from None
            if not _finite(value):
                raise ValueError(f"{field}: the value of {kw.arg} in {text!r} is not a finite number")
            kwargs[kw.arg] = value
        return node.func.id, kwargs
    raise ValueError(f"{field}: {text!r} is not a name or a call such as name(key=0.5)")


def canonical(text: str, field: str) -> str:
    """A component as the config id holds it: `name`, or `name(a=1, b=0.5)` with the keys sorted."""
    name, kwargs = parse(text, field)
    if not kwargs:
        return name
    return f"{name}({', '.join(f'{k}={_stable(v)}' for k, v in sorted(kwargs.items()))})"


def _finite(value) -> bool:
    """Whether every number in a literal is finite (inf and nan would not parse back from the canonical text)."""
    if isinstance(value, float):
        return value == value and abs(value) != float("inf")
    if isinstance(value, complex):
        return _finite(value.real) and _finite(value.imag)
    if isinstance(value, dict):
        return all(_finite(k) and _finite(v) for k, v in value.items())
    if isinstance(value, (tuple, list, set, frozenset)):
        return all(map(_finite, value))
    return True


def _unknown(kind: str, name: str, builtin=()) -> RecipeError:
    known = [*builtin, *registered(kind)]
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    where = (f" Known: {', '.join(known)}." if known else f" No {kind} is registered.")
    return RecipeError(f"Unknown {kind} {name!r} (recipe field {KINDS[kind]}).{hint}{where} Your own are registered "
                       f"with @toolkit.register_{kind}(\"name\") in a file passed with --experiments FILE (or "
                       f"{ENV}).")


def lookup(kind: str, text: str, builtin=()) -> tuple[Component, dict] | None:
    """The registered component a recipe names in `text` and its keyword arguments, checked against its factory's
    signature; None for a built-in name (`builtin`) given without arguments. Unknown names are a RecipeError."""
    try:
        name, kwargs = parse(text, KINDS[kind])
    except ValueError as e:
        raise RecipeError(f"{e}.") from None
    comp = _registry.get((kind, name))
    if comp is None:
        if name in builtin and not kwargs:
            return None
        if name in builtin:
            raise RecipeError(f"{KINDS[kind]}={text}: fastai's {name} takes no arguments here; set them with the "
                              f"recipe's fields (wd, mom, sqr_mom, eps), e.g. --set {KINDS[kind]}={name} "
                              f"--set eps=1e-6.")
        raise _unknown(kind, name, builtin)
    try:
        inspect.signature(comp.factory).bind(*POSITIONAL.get(kind, ()), **kwargs)
    except TypeError as e:
        raise RecipeError(f"The {kind} {name!r} cannot take {text!r}: {e}. Its factory is "
                          f"{name}{_signature(comp.factory)} (from {comp.origin}).") from None
    except ValueError:   # a builtin without a signature: its arguments are checked when it is called
        pass
    return comp, kwargs


def _signature(factory) -> str:
    try:
        return str(inspect.signature(factory))
    except (TypeError, ValueError):
        return "(...)"


def named(recipe) -> list[tuple[str, str]]:
    """(kind, text) of every component `recipe` names, built-in names (opt=sgd, arch=xresnet50) included."""
    out = [("callback", c) for c in recipe.callbacks] + [("batch_tfm", t) for t in recipe.batch_tfms]
    if recipe.loss:
        out.append(("loss", recipe.loss))
    return out + [("optimizer", recipe.opt), ("model", recipe.arch)]


def by_field(recipe) -> dict:
    """The registered components a recipe names, each (component, keyword arguments), checked, by the field that
    names them: {"callbacks": [...], "batch_tfms": [...], "loss", "opt", "arch": one or None}. A field that names
    none of them is the toolkit's own (cross-entropy, fastai's optimizers, xresnet, squeezenet, timm:NAME)."""
    out = {"callbacks": [], "batch_tfms": [], "loss": None, "opt": None, "arch": None}
    for kind, text in named(recipe):
        if kind == "model":
            try:
                name = parse(text, "arch")[0]
            except ValueError:
                continue   # timm:NAME
            if (kind, name) not in _registry:
                continue   # fastai's, the toolkit's, or unknown: train/models.py says which
        found = lookup(kind, text, OPTIMIZERS if kind == "optimizer" else ())
        if isinstance(out[KINDS[kind]], list):
            out[KINDS[kind]].append(found)
        else:
            out[KINDS[kind]] = found
    return out


def used(recipe) -> list[tuple[Component, dict]]:
    """The registered components a recipe names (checked), with their keyword arguments (see `by_field`)."""
    found = by_field(recipe)
    return [*found["callbacks"], *found["batch_tfms"], *(found[k] for k in ("loss", "opt", "arch") if found[k])]


def code_of(recipe) -> str:
    """The recipe's `code` as this process has it: `kind:name=hash` of each registered component it names, sorted."""
    return " ".join(sorted({f"{c.kind}:{c.name}={c.identity()}" for c, _ in used(recipe)}))


def with_code(recipe, what: str | None = None, origins: dict | None = None):
    """`recipe` with its `code` as this process has it; a recipe that recorded its code (a run's recipe.json) must
    find the same code here (see `check_recorded`; `origins`: the files its components came from, as recorded)."""
    from dataclasses import replace
    if recipe.code:
        check_recorded(recipe.code, what or f"Recipe {recipe.name!r}", origins or {}, still=_named_keys(recipe))
    now = code_of(recipe)
    return recipe if recipe.code == now else replace(recipe, code=now)


def recorded(code: str) -> dict[tuple[str, str], str]:
    """{(kind, name): hash} of a recipe's `code` field."""
    out = {}
    for item in code.split():
        ident, _, digest = item.partition("=")
        kind, _, name = ident.partition(":")
        out[(kind, name)] = digest
    return out


def origins(recipe) -> dict[str, str]:
    """{kind:name: the file it came from} of each registered component a recipe names: what a run records."""
    return {f"{c.kind}:{c.name}": c.origin for c, _ in used(recipe)}


def _named_keys(recipe) -> set[tuple[str, str]]:
    """(kind, name) of every component a recipe names, registered or not."""
    out = set()
    for kind, text in named(recipe):
        try:
            out.add((kind, parse(text, KINDS[kind])[0]))
        except ValueError:
            pass
    return out


def check_recorded(code: str, what: str, origins: dict, still=None) -> None:
    """A recipe recorded with `code` runs again only with the same code: a component it still names (`still`; all
    without it) that is missing here, or registered with other code, is a RecipeError naming it and the file to
    pass."""
    for (kind, name), digest in recorded(code).items():
        if still is not None and (kind, name) not in still:
            continue   # no longer named (a replay with --set callbacks=...): its code does not matter
        comp = _registry.get((kind, name))
        where = origins.get(f"{kind}:{name}") or ""
        if comp is None:
            a_file = where and where != "__main__" and (os.sep in where or " " not in where)
            how = (f"--experiments {where}" if a_file else
                   "the file that registers it with --experiments FILE, or run the cell that registers it")
            raise RecipeError(f"{what} used the {kind} {name!r} (code {digest}), which is not registered here. Pass "
                              f"{how} (or {ENV}, or import it in Python).")
        if comp.identity() != digest:
            raise RecipeError(f"{what} used the {kind} {name!r} with code {digest}; the {kind} registered here (from "
                              f"{comp.origin}) has other code ({comp.identity()}). The run folder keeps the source it "
                              f"ran (code-{kind}-{name}.py): put that code back, or run it as a new experiment.")


def sources(recipe) -> dict[str, str]:
    """{file name: source} of each registered component a recipe names: what its run folder keeps."""
    return {f"{c.kind}-{c.name}.py": f"# {c.kind} {c.name!r}, code {c.identity()}, from {c.origin}\n\n{c.source()}\n"
            for c, _ in used(recipe)}


def build(comp: Component, kwargs: dict, *args, **more):
    """Call a component's factory; an error inside it is a UserCodeError with its own traceback, framed by one
    line that names the component and its file."""
    try:
        return comp.factory(*args, **kwargs, **more)
    except Exception as e:
        raise UserCodeError(f"The {comp.kind} {comp.name!r} (from {comp.origin}) failed when built: "
                            f"{type(e).__name__}: {e}", e) from e


class UserCodeError(ToolkitError):
    """An error inside the user's own file or factory: shown with its traceback, framed by one line."""

    def __init__(self, message: str, cause: BaseException | None = None, trace: str = ""):
        super().__init__(message)
        self.trace = trace or ("".join(traceback.format_exception(type(cause), cause, cause.__traceback__))
                               if cause is not None else "")

    def __reduce__(self):   # across processes (a Ray worker): the message and the traceback as text
        return type(self), (str(self), None, self.trace)


# --- identity: the code a factory runs, as text ------------------------------------------------------------------

_LIBRARY_ROOTS = tuple({str(Path(p).resolve()) + os.sep for key in ("purelib", "platlib", "stdlib", "platstdlib")
                        if (p := sysconfig.get_paths().get(key))})
_TOOLKIT_ROOT = str(Path(__file__).resolve().parents[1]) + os.sep


def _module_file(module_name: str) -> str | None:
    module = sys.modules.get(module_name)
    return getattr(module, "__file__", None) if module else None


def _is_users(obj) -> bool:
    """Whether `obj` is the user's own code (a file of theirs, a notebook, __main__), not a library's."""
    name = getattr(obj, "__module__", None) or ""
    if name == "__main__" or name.startswith(_USER_PREFIX):
        return True
    top = name.split(".")[0]
    if not name or top in sys.stdlib_module_names or top in sys.builtin_module_names:
        return False
    file = _module_file(name)
    if file is None:
        return True    # a module made in a notebook or by exec: nowhere else to read it from
    file = str(Path(file).resolve())
    return not (file.startswith((_TOOLKIT_ROOT, *_LIBRARY_ROOTS)) or "site-packages" in file)


@functools.lru_cache(maxsize=None)
def _version(top: str) -> str:
    if top in sys.stdlib_module_names:
        return f"python {sys.version_info.major}.{sys.version_info.minor}"
    dists = importlib.metadata.packages_distributions().get(top, [top])
    try:
        return importlib.metadata.version(dists[0])
    except importlib.metadata.PackageNotFoundError:
        return str(getattr(sys.modules.get(top), "__version__", ""))


def _library(obj) -> str:
    """A library object by its qualified name and its library's version."""
    module = getattr(obj, "__module__", None) or getattr(obj, "__name__", "") or type(obj).__module__
    version = _version(module.split(".")[0])
    qual = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or type(obj).__qualname__
    return f"{module}.{qual}" + (f"@{version}" if version else "") if not isinstance(obj, types.ModuleType) \
        else f"{module}@{version}"


def _parsed(func):
    """A function's syntax tree from its source, or None (no source, or a fragment such as a lambda in a call)."""
    try:
        return ast.parse(textwrap.dedent(inspect.getsource(func)))
    except (OSError, TypeError, SyntaxError):
        return None


def _code_text(code) -> str:
    """A code object without source, as text: its bytecode, constants (nested code too), names and variables."""
    consts = tuple(_code_text(c) if isinstance(c, types.CodeType) else _stable(c) for c in code.co_consts)
    return repr((code.co_code, consts, code.co_names, code.co_varnames))


def _tree(func, tree=None) -> str:
    """A function's syntax tree (`tree`, else parsed here) without comments or positions; without source, its code
    object as text."""
    tree = tree if tree is not None else _parsed(func)
    if tree is not None:
        return ast.dump(tree, include_attributes=False)
    code = getattr(func, "__code__", None)
    return _code_text(code) if code is not None else _library(func)


def _code_names(code) -> set[str]:
    return set(code.co_names).union(*(_code_names(c) for c in code.co_consts if isinstance(c, types.CodeType)))


def _names_used(func, tree=None) -> dict:
    """{name: value} of the globals and free variables a function's code reads: from its syntax tree where there is
    one (nested functions, lambdas and classes included; an attribute's name is no global), else its bytecode."""
    code = func.__code__
    names = ({n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
             if tree is not None else _code_names(code))
    out = {n: func.__globals__[n] for n in names if n in func.__globals__}
    for name, cell in zip(code.co_freevars, func.__closure__ or ()):
        try:
            out[name] = cell.cell_contents
        except ValueError:   # a cell not filled yet
            pass
    return out


def _stable(value) -> str:
    """A literal as text that is the same in every process (sets and dicts sorted; Python's repr of a set follows
    the string hash, which changes from one process to the next)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_stable(k)}: {_stable(v)}" for k, v in sorted(value.items(), key=lambda kv:
                                                                                 _stable(kv[0]))) + "}"
    if isinstance(value, frozenset):   # only ever in the user's code, never in a recipe (no literal makes one)
        return f"frozenset({{{', '.join(sorted(map(_stable, value)))}}})"
    if isinstance(value, set):         # as Python writes a set, its items sorted: it parses back as itself
        return f"{{{', '.join(sorted(map(_stable, value)))}}}" if value else "set()"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(map(_stable, value)) + ("," if isinstance(value, tuple) and len(value) == 1 else "")
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    return repr(value)


def _literal(value) -> bool:
    if isinstance(value, dict):
        return all(_literal(k) and _literal(v) for k, v in value.items())
    return isinstance(value, (int, float, complex, str, bool, bytes, type(None))) or (
        isinstance(value, (tuple, list, set, frozenset)) and all(_literal(v) for v in value))


_SKIP = ("__dict__", "__weakref__", "__module__", "__doc__", "__qualname__", "__firstlineno__", "__static_attributes__")


def _walk(obj, seen: dict, out: list) -> None:
    """Append to `out` the text of `obj` and of everything of the user's own that it uses, each once."""
    if id(obj) in seen:
        out.append(f"(as above: {getattr(obj, '__qualname__', type(obj).__qualname__)})")
        return
    seen[id(obj)] = obj
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    if isinstance(obj, property):
        for f in (obj.fget, obj.fset, obj.fdel):
            if f is not None:
                _walk(f, seen, out)
    elif isinstance(obj, functools.partial):
        out.append(f"partial({len(obj.args)} args, {sorted(obj.keywords)})")
        for part in (obj.func, *obj.args, *(obj.keywords[k] for k in sorted(obj.keywords))):
            _value(part, seen, out)
    elif isinstance(obj, types.ModuleType):
        out.append(_module_text(obj))
    elif (inspect.isclass(obj) or inspect.isfunction(obj)) and not _is_users(obj):
        out.append(f"{'class' if inspect.isclass(obj) else 'function'} {_library(obj)}")
    elif inspect.isclass(obj):
        _walk_class(obj, seen, out)
    elif inspect.isfunction(obj):
        tree = _parsed(obj)
        out.append(f"function {obj.__qualname__}: {_tree(obj, tree)}")
        for name, value in sorted(_names_used(obj, tree).items()):
            out.append(f"{name} =")
            _value(value, seen, out)
    elif callable(obj) and not _is_users(type(obj)):
        out.append(f"object {_library(obj)}")
    elif _literal(obj):
        out.append(_stable(obj))
    else:   # an object of the user's: its class and its state
        out.append(f"instance of {type(obj).__qualname__}")
        _walk(type(obj), seen, out)
        for name, value in sorted((getattr(obj, "__dict__", None) or {}).items()):
            out.append(f".{name} =")
            _value(value, seen, out)


def _module_text(module) -> str:
    """A module a piece of code reads: a user's file by its syntax tree, a library's by its name and version."""
    file = getattr(module, "__file__", None)
    if _is_users(types.SimpleNamespace(__module__=module.__name__)) and file and Path(file).is_file():
        return f"module {module.__name__}: {ast.dump(ast.parse(Path(file).read_text()))}"
    return f"module {_library(module)}"


def _walk_class(cls, seen: dict, out: list) -> None:
    """A class of the user's: its bases, then member by member (a notebook's class has no source file)."""
    out.append(f"class {cls.__qualname__}({', '.join(b.__qualname__ for b in cls.__bases__)})")
    for base in cls.__bases__:
        _walk(base, seen, out)
    for name, member in sorted(vars(cls).items()):
        if name not in _SKIP:
            out.append(f"{cls.__qualname__}.{name}:")
            _value(member, seen, out)


def _value(value, seen: dict, out: list) -> None:
    """A value a piece of code uses: a literal as its stable text, anything else walked."""
    if _literal(value):
        out.append(_stable(value))
    else:
        _walk(value, seen, out)


def code_text(factory) -> str:
    """The text a component's identity hashes: the factory's syntax tree and, following the names it reads, the
    functions, classes (method by method), constants and objects of the user's own code that it uses; library objects
    by qualified name and version. Comments, blank lines and positions do not count, nor do other parts of the same
    file."""
    out: list[str] = []
    _walk(factory, {}, out)
    return "\n".join(out)


def _reached(factory, names=_names_used) -> list:
    """The factory and everything it uses, each once, in the order met: the user's functions (following the names
    `names` finds in them), classes (bases and members), partials' parts, and the modules, constants and objects
    they read; library objects are met, not entered."""
    seen, out = set(), []

    def visit(obj):
        if isinstance(obj, (staticmethod, classmethod)):
            obj = obj.__func__
        if id(obj) in seen:
            return
        seen.add(id(obj))
        out.append(obj)
        if isinstance(obj, functools.partial):
            for part in (obj.func, *obj.args, *obj.keywords.values()):
                visit(part)
        elif inspect.isfunction(obj) and _is_users(obj):
            for value in names(obj).values():
                visit(value)
        elif inspect.isclass(obj) and _is_users(obj):
            for value in (*obj.__bases__, *vars(obj).values()):
                visit(value)
    visit(factory)
    return out


def _running(factory) -> tuple:
    """What runs: the identities of the code objects, classes, modules and objects reachable from the factory through
    its bytecode, and its constants. It changes when a cell or a file is run again, never when a file is only edited
    on disk."""
    out = []
    for obj in _reached(factory):
        if _literal(obj):
            out.append(_stable(obj))
        elif inspect.isfunction(obj) and _is_users(obj):
            out.append(id(obj.__code__))
        elif (inspect.isclass(obj) and _is_users(obj)) or isinstance(obj, types.ModuleType) or (
                not callable(obj) and isinstance(getattr(obj, "__dict__", None), dict)):
            out.append(id(obj))
    return tuple(out)


def _sources(factory) -> list[str]:
    """The source text of the factory and of the user's own functions and classes it uses (a method within its
    class's; a notebook's class, which has no source file, method by method)."""
    reached = [o for o in _reached(factory, lambda f: _names_used(f, _parsed(f)))
               if (inspect.isclass(o) or inspect.isfunction(o)) and _is_users(o)]
    members = {id(m) for c in reached if inspect.isclass(c) for m in vars(c).values()}
    out = []
    for obj in reached:
        if inspect.isclass(obj):
            try:
                out.append(inspect.getsource(obj))
            except (OSError, TypeError):
                body = [textwrap.indent(text, "    ") for m in vars(obj).values() if inspect.isfunction(m)
                        for text in [_source(m)] if text]
                bases = ", ".join(b.__name__ for b in obj.__bases__)
                out.append(f"class {obj.__name__}({bases}):\n" + "\n".join(body))
        elif id(obj) not in members and _source(obj):
            out.append(_source(obj))
    return out


def _source(func) -> str:
    """A function's source, dedented ("" without one)."""
    try:
        return textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):
        return ""


# --- loading the user's files --------------------------------------------------------------------------------------

_USER_PREFIX = "toolkit_user."
# (take, put) of other registries that a user's file fills (the named experiments): a failed load puts them back
ROLLBACK: list = []
_loaded_files: dict[str, str] = {}    # resolved path or module name -> what was loaded


def loading_now() -> str:
    """The user's file being loaded now, or ""."""
    return _loading[-1] if _loading else ""


def _origin_of(factory) -> str:
    module = sys.modules.get(getattr(factory, "__module__", "") or "")
    file = getattr(module, "__file__", None)
    return str(file) if file else (getattr(factory, "__module__", None) or "a notebook")


def load(item: str) -> None:
    """Run a file of the user's (a path to a .py file) or import a module by name, once: what --experiments FILE,
    TOOLKIT_EXPERIMENTS and the entry points do. An error inside it is shown with its own traceback."""
    path = Path(item).expanduser()
    if path.suffix == ".py" or os.sep in item or path.is_file():
        if not path.is_file():
            raise ToolkitError(f"--experiments {item}: no such file. Pass a Python file that registers experiments "
                               f"or components (or the name of an importable module).")
        key = str(path.resolve())
        if key in _loaded_files:
            return
        name = _USER_PREFIX + "m" + hashlib.sha1(key.encode()).hexdigest()[:10] + "_" + \
            "".join(c if c.isalnum() else "_" for c in path.stem)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules.setdefault(_USER_PREFIX[:-1], types.ModuleType(_USER_PREFIX[:-1]))   # so pickle finds it here
        sys.modules[name] = module
        _run(key, key, lambda: spec.loader.exec_module(module), lambda: sys.modules.pop(name, None))
    else:
        if item in _loaded_files:
            return
        _run(item, item, lambda: importlib.import_module(item))


def _run(key: str, origin: str, do, undo=lambda: None) -> None:
    """Run a user's file or module once (`key`): what it registers comes from `origin`. A failure leaves nothing of it
    registered, so that the fixed file loads again."""
    before = (dict(_registry), dict(_from_files), [take() for take, _ in ROLLBACK])
    _loaded_files[key] = origin
    _loading.append(origin)
    try:
        do()
    except BaseException as e:
        undo()
        _registry.clear(), _registry.update(before[0])
        _from_files.clear(), _from_files.update(before[1])
        for (_, put), state in zip(ROLLBACK, before[2]):
            put(state)
        _loaded_files.pop(key, None)
        if isinstance(e, ToolkitError) or not isinstance(e, Exception):
            raise
        if isinstance(e, ModuleNotFoundError) and e.name and (origin == e.name or origin.startswith(e.name + ".")):
            raise ToolkitError(f"--experiments {origin}: no such file or module. Pass a Python file that registers "
                               f"experiments or components, or the name of an importable module.") from None
        raise UserCodeError(f"Loading {origin} failed: {type(e).__name__}: {e}", e) from e
    finally:
        _loading.pop()


def from_environment() -> list[str]:
    """The files and modules TOOLKIT_EXPERIMENTS names, joined by the OS path separator."""
    return [p for p in os.environ.get(ENV, "").split(os.pathsep) if p.strip()]


def load_installed() -> None:
    """The `toolkit.experiments` entry points of installed packages, then TOOLKIT_EXPERIMENTS."""
    for ep in importlib.metadata.entry_points(group=ENTRY_POINTS):
        if ep.value not in _loaded_files:
            _run(ep.value, f"{ep.value} (entry point {ep.name})", ep.load)
    for item in from_environment():
        load(item)


# --- shipping components to a Ray worker ----------------------------------------------------------------------------

def snapshot(recipes) -> list[Component]:
    """The registered components `recipes` name, with their identity and source fixed: what a worker installs."""
    out = {}
    for r in recipes:
        for c, _ in used(r):
            out[(c.kind, c.name)] = Component(c.kind, c.name, c.factory, c.origin, (c.identity(), c.source()))
    return list(out.values())


def by_value(components) -> None:
    """Ask cloudpickle to ship the user's modules that define `components` by value (a worker cannot import a file
    loaded with --experiments, nor a notebook)."""
    import ray.cloudpickle as cloudpickle
    modules = {obj.__name__ if isinstance(obj, types.ModuleType) else getattr(obj, "__module__", None)
               for c in components for obj in _reached(c.factory)
               if isinstance(obj, types.ModuleType) or inspect.isfunction(obj) or inspect.isclass(obj)}
    for name in sorted(m for m in modules if m and m != "__main__" and m in sys.modules):
        if _is_users(types.SimpleNamespace(__module__=name)):
            try:
                cloudpickle.register_pickle_by_value(sys.modules[name])
            except ValueError:
                pass


def install(components) -> None:
    """Register components shipped from a driver (on a worker), with the identity their driver computed."""
    for c in components:
        _registry[(c.kind, c.name)] = c
