"""The package is grouped by stage, in the order data flows: every import in it (those inside functions too) goes to
its own stage or an earlier one, no two modules import each other, and `import toolkit` stays light."""
import ast
import graphlib
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "toolkit"

# Which may use which: a module may import from its own stage and from the stages before it (docs/code.md).
ORDER = [
    ("toolkit.errors", "toolkit.atomic", "toolkit.display", "toolkit.defaults", "toolkit.stats"),   # the bottom, used by all
    ("toolkit.recipes",),
    ("toolkit.data",),
    ("toolkit.train",),
    ("toolkit.records",),                                        # what a run leaves: folders, the results table
    ("toolkit.judgment",),                                       # what the records support: evidence and verdicts
    ("toolkit.sweep",),                                          # writes records
    ("toolkit.report",),                                         # reads records, and nothing of the sweep
    ("toolkit.studies",),                                        # studies of a comparison: noise, fidelity, proxies
    ("toolkit.api",),                                            # what `import toolkit` offers
    ("toolkit.cli", "toolkit.__main__"),                         # the launcher
    ("toolkit",),                                                # the package's face, toolkit/__init__.py
]


# Stages that never import one another, though the order would allow it: (importer, imported).
APART = [("toolkit.report", "toolkit.sweep")]


def modules(root: Path) -> dict[str, Path]:
    """{dotted name: file} of every module under the package folder `root`."""
    out = {}
    for f in root.rglob("*.py"):
        parts = [root.name, *f.relative_to(root).with_suffix("").parts]
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def imports(name: str, path: Path, known: dict) -> set[str]:
    """The package's modules that module `name` imports anywhere in its file (also inside functions), and the
    modules it names as plain strings (the face's lazy attributes)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*up, *([node.module] if node.module else [])])
            subs = {f"{base}.{a.name}" for a in node.names} & set(known)   # `from . import plan`: the module
            found |= subs | ({base} if len(subs) < len(node.names) else set())
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "." in node.value and node.value in known:
            found.add(node.value)
    root = next(iter(known)).split(".")[0]
    return {m for m in found if m in known and m != name and m.split(".")[0] == root}


def stage(name: str, order) -> int:
    """The index of the stage a module belongs to: the longest prefix of its name that ORDER lists."""
    best = max((len(p), i) for i, group in enumerate(order) for p in group
               if name == p or name.startswith(p + "."))
    return best[1]


def problems(root: Path, order=ORDER) -> list[str]:
    """Imports against `order`, and import cycles, in the package at `root`."""
    known = modules(root)
    graph = {name: imports(name, path, known) for name, path in known.items()}
    out = [f"{a} imports {b}, a later stage" for a, deps in sorted(graph.items()) for b in sorted(deps)
           if stage(b, order) > stage(a, order)]
    out += [f"{a} imports {b}: {x} reads records and never the {y.split('.')[-1]}" for a, deps in sorted(graph.items())
            for b in sorted(deps) for x, y in APART if _within(a, x) and _within(b, y)]
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as e:
        out.append(f"import cycle: {' -> '.join(e.args[1])}")
    return out


def _within(name: str, stage_name: str) -> bool:
    return name == stage_name or name.startswith(stage_name + ".")


def test_the_package_imports_in_the_order_data_flows_and_has_no_cycle():
    known = modules(PACKAGE)
    assert {"toolkit.recipes.recipe", "toolkit.data.pipeline", "toolkit.train.learner", "toolkit.records.table",
            "toolkit.sweep.execute", "toolkit.report.tables", "toolkit.api"} <= set(known)
    deps = imports("toolkit.sweep.jobs", known["toolkit.sweep.jobs"], known)
    assert "toolkit.train.learner" in deps and "toolkit.data.pipeline" in deps  # imports inside a function count
    assert {"toolkit.api", "toolkit.recipes.registry"} <= imports("toolkit", known["toolkit"], known)  # lazy face
    assert problems(PACKAGE) == []


def _package(tmp_path, files: dict) -> Path:
    root = tmp_path / "toolkit"
    for rel, text in {"__init__.py": "", **files}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_the_check_fails_on_a_cycle_and_on_an_import_against_the_order(tmp_path):
    cycle = _package(tmp_path / "a", {"sweep/__init__.py": "", "sweep/plan.py": "from .jobs import run_job\n",
                                      "sweep/jobs.py": "def f():\n    from . import plan\n"})
    assert problems(cycle) == ["import cycle: toolkit.sweep.jobs -> toolkit.sweep.plan -> toolkit.sweep.jobs"] \
        or problems(cycle) == ["import cycle: toolkit.sweep.plan -> toolkit.sweep.jobs -> toolkit.sweep.plan"]
    backwards = _package(tmp_path / "b", {"recipes/__init__.py": "", "data/__init__.py": "",
                                          "data/autoaug.py": "POLICIES = ()\n",
                                          "recipes/recipe.py": "def f():\n    from ..data.autoaug import POLICIES\n"})
    assert problems(backwards) == ["toolkit.recipes.recipe imports toolkit.data.autoaug, a later stage"]
    apart = _package(tmp_path / "c", {"sweep/__init__.py": "", "report/__init__.py": "", "sweep/plan.py": "",
                                      "report/compare.py": "from ..sweep.plan import reference_recipe\n"})
    assert problems(apart) == ["toolkit.report.compare imports toolkit.sweep.plan: toolkit.report reads records and "
                               "never the sweep"]


@pytest.mark.parametrize("code", ["import toolkit", "import toolkit; toolkit.list_experiments(); toolkit.get('mixup')",
                                  "from toolkit.cli import main; main(['list'])"])
def test_the_face_and_the_listing_load_no_torch_or_fastai(code):
    check = f"import sys; {code}; print(sorted(m for m in ('torch', 'fastai', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "[]"
