"""Shared fixtures: a private TOOLKIT_HOME, a tiny real dataset (a digits proxy), the shared Imagenette copy."""
import os
import warnings
from pathlib import Path

import pytest

import toolkit_experiments  # noqa: F401  (registers the named experiments, as the launcher does)

SHARED_IMAGENETTE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "imagenette2-sq224"


@pytest.fixture(scope="session", autouse=True)
def toolkit_home(tmp_path_factory):
    """Every cache the tests make (digits, image checks, stats) goes to a temporary folder; so does the one MLflow
    store of the whole test run, and W&B logs offline."""
    home = tmp_path_factory.mktemp("toolkit_home")
    env = {"TOOLKIT_HOME": str(home), "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
           "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*")
    yield home
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def tiny(tmp_path_factory, toolkit_home) -> Path:
    """4 training images per class of the embedded digits, 32 px: every recipe trains on it in seconds."""
    from toolkit.studies.proxies import make_proxy
    dst = tmp_path_factory.mktemp("tiny") / "digits-4"
    make_proxy("digits", dst, per_class=4, size=32, seed=0, progress="none")
    return dst


@pytest.fixture(scope="session")
def tiny_flips(tiny, tmp_path_factory) -> Path:
    """The tiny dataset without its dataset.json: a folder whose images may be mirrored (for tta=flip)."""
    import shutil
    dst = tmp_path_factory.mktemp("tiny_flips") / "digits-4-flips"
    shutil.copytree(tiny, dst, ignore=shutil.ignore_patterns("dataset.json"))
    return dst


@pytest.fixture
def results(tmp_path) -> Path:
    return tmp_path / "results"


@pytest.fixture(scope="session")
def imagenette() -> Path:
    if not (SHARED_IMAGENETTE / "train").is_dir():
        pytest.skip(f"shared Imagenette copy not found at {SHARED_IMAGENETTE}")
    return SHARED_IMAGENETTE


def resolved(recipe):
    """A recipe resolved as a run on this machine resolves it: its dataset and size, its precision and format."""
    from toolkit.data.datasets import with_dataset
    from toolkit.train import precision
    return precision.decide(with_dataset(recipe))


CONTEXT = {"arch": "xresnet18", "dataset": "digits"}   # the context of the rows `add_rows` writes


def add_rows(results, name, accuracies, seed0=42, tta=None, evals=None, role="recipe", **changes):
    """Results-table rows for `name` under CONTEXT, one per seed from seed0, with the given accuracies (and TTA
    accuracies, or {key: accuracies} of other evaluations, each taking 2 s), as runs planned with `role` would
    record them: a table to compare without training."""
    from dataclasses import replace
    from toolkit.train import precision
    from toolkit.recipes import registry
    from toolkit.records import schema
    from toolkit.records.table import append_row
    recipe = resolved(replace(registry.get(name), arch="xresnet18", dataset="digits", **changes))
    for i, acc in enumerate(accuracies):
        r = replace(recipe, seed=seed0 + i)
        metrics = {"accuracy": acc, "valid_loss": 1.0, "wall_seconds": 10.0, "n_valid": 359,
                   "pixels_seen": 1e6, "train_seconds": 20.0, "eval_seconds": 1.0,
                   **({"accuracy_tta": tta[i]} if tta else {}),
                   **{m: v for k, accs in (evals or {}).items()
                      for m, v in ((f"accuracy_{k}", accs[i]), (f"{k}_seconds", 2.0))}}
        ctx = {**CONTEXT, **{k: str(v) for k, v in changes.items()}}
        auto = precision.choice()   # as a sweep planned on this machine records it, with what its row means
        append_row(results, schema.result_row(r, ctx, Path(f"/nowhere/{name}-{i}-{len(changes)}"), metrics, auto,
                                              schema.meaning(r, ctx, role, auto)))


def folder_dls(ds, size: int, bs: int, **changes):
    """fastai's folder DataLoaders of a plain recipe on `ds`, through the toolkit's one pipeline."""
    from toolkit.data.pipeline import RunData, dataloaders
    from toolkit.recipes.recipe import Recipe
    recipe = Recipe(dataset=str(ds.path), size=size, bs=bs, loader="folder", **changes)
    return dataloaders(recipe, RunData(ds, [], None), size, num_workers=0)


def packed_dls(ds, pack, size: int, bs: int, prefetch=None, **changes):
    """Packed DataLoaders of a plain recipe on `ds`, through the toolkit's one pipeline."""
    from toolkit.data.pipeline import RunData, dataloaders
    from toolkit.recipes.recipe import Recipe
    recipe = Recipe(dataset=str(ds.path), size=size, bs=bs, **changes)
    return dataloaders(recipe, RunData(ds, [], pack), size, prefetch=prefetch)


def signal_when(cmd, ready, sig, timeout=300, env=None):
    """Start `cmd`, send it `sig` once `ready()` is true (or it has exited), and return (returncode, stderr).

    The child gets SIGINT's default handler, as a terminal would give it (a shell starts background jobs
    with SIGINT ignored).
    """
    import signal as _signal
    import subprocess
    import time
    proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, preexec_fn=lambda: _signal.signal(_signal.SIGINT, _signal.SIG_DFL))
    try:
        deadline = time.time() + timeout
        while time.time() < deadline and proc.poll() is None and not ready():
            time.sleep(0.05)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=180)
    finally:
        proc.kill()
    return proc.returncode, err


def epochs_logged(results: Path, at_least: int) -> bool:
    """Whether an unfinished run under `results` has logged `at_least` epochs."""
    logs = [p / "epochs.csv" for p in (Path(results) / "runs").glob("*/") if not (p / "metrics.json").exists()]
    return any(f.exists() and len(f.read_text().splitlines()) > at_least for f in logs)


def launch(args, capsys=None) -> tuple[int, str, str]:
    """The launcher in this process (no interpreter start-up): exit code, stdout, stderr (without `capsys`: empty,
    the output left to pytest)."""
    import signal
    import warnings

    from toolkit.cli import main
    handler, formatwarning = signal.getsignal(signal.SIGTERM), warnings.formatwarning
    try:
        code = main([str(a) for a in args])
    finally:
        signal.signal(signal.SIGTERM, handler)
        warnings.formatwarning = formatwarning
    if capsys is None:
        return code, "", ""
    out = capsys.readouterr()
    return code, out.out, out.err
