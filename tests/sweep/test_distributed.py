"""Sweeps on a real Ray cluster of two one-CPU nodes on this machine (one cluster for the whole test session)."""
import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from toolkit.recipes import registry
from toolkit.records import artifacts, folders
from toolkit.records.table import load_table
from toolkit.sweep import track
from toolkit.sweep import plan
from toolkit.sweep.options import Options
from toolkit.api import sweep_and_compare
from toolkit.errors import ToolkitError

from conftest import launch, signal_when
from trackers import check_tensorboard

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")


@pytest.fixture(scope="module")
def cluster():
    """A head and a worker node, one CPU each: two one-CPU workers, joined with --address like a real cluster."""
    from ray.cluster_utils import Cluster
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    yield c
    c.shutdown()   # stops this cluster's own processes only (never `ray stop`)


def ctx(tiny, epochs=2):
    return plan.context_of({"dataset": str(tiny), "size": 32, "epochs": epochs, "bs": 16, "arch": "xresnet18"})


def cli(tiny, epochs, *args):
    return [sys.executable, "-m", "toolkit", "run", *map(str, args), "--dataset", str(tiny), "--size", "32",
            "--epochs", str(epochs), "--set", "arch=xresnet18", "--set", "bs=16", "--quiet"]


def serial_one_thread(tiny, epochs, names, seeds, results):
    """The same sweep serially in this process with one torch thread, as each Ray worker runs its job: the
    reference the cluster's results must equal (no interpreter start-up, as a subprocess would cost)."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sweep_and_compare(names, ctx(tiny, epochs), seeds=seeds, reference=False, results=results,
                          log=lambda *a: None, quiet=True)
    finally:
        torch.set_num_threads(threads)
    return load_table(results)


def overlapped(rows: pd.DataFrame) -> bool:
    spans = sorted(zip(rows["started_at"], rows["finished_at"]))
    return any(b_start < a_end for (_, a_end), (b_start, _) in zip(spans, spans[1:]))


def test_a_sweep_on_two_workers_equals_the_serial_one_thread_sweep(cluster, tiny, tmp_path):
    names = ["baseline", "label_smoothing", "mixup"]
    done = sweep_and_compare(names, ctx(tiny), seeds=2, reference=False, results=tmp_path / "ray", executor="ray",
                     address=cluster.address, log=lambda *a: None)
    table = load_table(tmp_path / "ray")
    assert sorted(zip(table["name"], table["seed"])) == sorted((n, s) for n in names for s in (42, 43))  # once each
    assert (table["threads"] == 1).all() and overlapped(table)
    one = serial_one_thread(tiny, 2, names, 2, tmp_path / "serial")
    key = lambda t: dict(zip(zip(t["name"], t["seed"]), t["accuracy"]))  # noqa: E731
    assert key(table) == key(one) and (one["threads"] == 1).all()
    assert set(done.summary["name"]) == set(names)


@pytest.mark.slow   # about 30 s: in `make test-all`
def test_a_worker_killed_mid_job_is_retried_and_resumes_from_its_checkpoint(cluster, tiny, tmp_path):
    res = tmp_path / "r"
    driver = subprocess.Popen([*cli(tiny, 6, "baseline", "--seeds", 2, "--no-reference", "--results", res,
                                    "--executor", "ray", "--address", cluster.address, "--checkpoint-every", 0)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = None
    try:
        deadline = time.time() + 300
        while killed is None and time.time() < deadline and driver.poll() is None:
            for st in res.glob("runs/*/status.json"):
                status = json.loads(st.read_text())
                if status["status"] == "running" and (st.parent / "checkpoint.pt").exists():
                    k = artifacts.load_checkpoint(st.parent)["log"]["epochs_done"]
                    os.kill(status["pid"], signal.SIGKILL)       # the Ray worker running this job
                    killed = st.parent
                    break
            time.sleep(0.05)
        out, err = driver.communicate(timeout=600)
    finally:
        driver.kill()
    assert killed is not None and driver.returncode == 0, err
    table = load_table(res)
    assert sorted(table["seed"]) == [42, 43]                     # every row once
    row = table[table["run_dir"] == str(killed)].iloc[0]
    metrics = json.loads((killed / "metrics.json").read_text())
    # It went on from its checkpoint (or from the next one, written between our read and the kill).
    assert row["attempts"] == 2 and metrics["resumed_at_epoch"] in (k, k + 1) and row["restarted"] != "yes"
    assert len(pd.read_csv(killed / "epochs.csv")) == 6
    one = serial_one_thread(tiny, 6, ["baseline"], 2, tmp_path / "s").set_index("seed")
    assert row["accuracy"] == one.loc[row["seed"], "accuracy"]
    assert row["valid_loss"] == one.loc[row["seed"], "valid_loss"]


def test_a_job_that_fails_in_training_is_reported_and_the_others_finish(cluster, tiny, tmp_path):
    # Passes every check on the driver (the weights file exists); loading it fails once the job starts.
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    broken = registry.derive(registry.get("baseline"), "junk_weights", weights=str(junk))
    said = []
    with pytest.raises(ToolkitError, match=r"1 of 3 job\(s\) failed"):
        sweep_and_compare(["baseline", "normalize", broken], ctx(tiny, 1), reference=False, results=tmp_path,
                  executor="ray", address=cluster.address, log=said.append)
    assert sorted(load_table(tmp_path)["name"]) == ["baseline", "normalize"], said
    failures = [line for line in said if "FAILED" in line]
    assert len(failures) == 1 and "junk_weights" in failures[0] and "Could not read" in failures[0], said
    statuses = [folders.read_status(d)["status"] for d in (tmp_path / "runs").iterdir() if d.is_dir()]
    assert sorted(statuses) == ["failed", "finished", "finished"], (said, statuses)


@pytest.mark.slow   # about 30 s: in `make test-all`
def test_ctrl_c_on_the_driver_cancels_and_the_same_command_finishes_what_is_missing(cluster, tiny, tmp_path, capsys):
    res = tmp_path / "r"
    args = cli(tiny, 3, "baseline", "normalize", "--seeds", 2, "--no-reference", "--results", res,
               "--executor", "ray", "--address", cluster.address)
    code, err = signal_when(args, lambda: (res / "runs.csv").exists(), signal.SIGINT)
    assert code == 130, err
    finished = len(load_table(res))
    assert 1 <= finished < 4
    statuses = [json.loads(p.read_text())["status"] for p in res.glob("runs/*/status.json")]
    assert set(statuses) <= {"finished", "interrupted"}   # no run left marked running
    code, out, err = launch(args[3:], capsys)   # the same command again, in this process
    assert code == 0, err
    assert f"skipped {finished} finished run(s)" in out
    table = load_table(res)
    assert sorted(zip(table["name"], table["seed"])) == [("baseline", 42), ("baseline", 43),
                                                          ("normalize", 42), ("normalize", 43)]


def test_without_ray_the_executor_says_how_to_install_it(tiny, tmp_path):
    hide = ("import sys; sys.modules['ray'] = None; from toolkit.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    p = subprocess.run([sys.executable, "-c", hide, "run", "baseline", "--dataset", str(tiny), "--epochs", "1",
                        "--executor", "ray", "--results", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and "pip install -e '.[ray]'" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "runs").exists()


def test_without_a_shared_disk_a_job_returns_its_small_files_for_the_driver(cluster, tiny, tmp_path):
    """A worker that cannot see the results folder works locally; the driver writes the folder and the row."""
    from toolkit.sweep import ray_executor as distributed
    job = plan.plan(["baseline"], ctx(tiny, 1), reference=False)[0]
    run_dir = folders.new_run_name(tmp_path, job.recipe)
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        coordinator = distributed._coordinator(ray)
        task = ray.remote(distributed._task).options(num_cpus=1)
        options = Options(results=str(tmp_path), checkpoint_every=0)
        out = ray.get(task.remote(job, str(run_dir), str(tmp_path / "no-such-marker"), "token", 1, options, coordinator))
    finally:
        ray.shutdown()
    assert set(out["files"]) >= {"recipe.json", "metrics.json", "epochs.csv", "status.json", "env.json"}
    assert "checkpoint.pt" not in out["files"] and str(tmp_path) not in out["row"]["run_dir"]  # worked elsewhere
    tracking = track.open_sweep(("tensorboard",), tmp_path, "baseline")  # a local store: the driver logs the run
    row = distributed._record(tmp_path, run_dir, out, tracking)
    assert row["run_dir"] == str(run_dir) and folders.read_status(run_dir)["status"] == "finished"
    assert load_table(tmp_path)["run_dir"].tolist() == [str(run_dir)]
    check_tensorboard(run_dir, tmp_path)                 # from the rows the job returned


def test_a_component_from_a_notebook_cell_runs_on_the_workers(cluster, tiny, tmp_path):
    """A callback defined in a cell (no file a worker could import) goes with the jobs by value, and runs there."""
    import linecache
    import types

    from toolkit.recipes import components
    cell = (f"from fastai.callback.core import Callback\n"
            f"import toolkit\n\n"
            f"class Mark(Callback):\n"
            f"    def after_fit(self):\n"
            f"        with open({str(tmp_path / 'marks.txt')!r}, 'a') as fh:\n"
            f"            fh.write(f'{{self.epoch + 1}}\\n')\n\n"
            f"@toolkit.register_callback('mark_cell')\n"
            f"def mark_cell():\n"
            f"    return Mark()\n")
    name = "<ipython-input-7-mark>"
    linecache.cache[name] = (len(cell), None, cell.splitlines(keepends=True), name)   # as IPython keeps a cell
    module = types.ModuleType("notebook_cell")   # not in sys.modules: nothing a worker could import
    exec(compile(cell, name, "exec"), module.__dict__)
    try:
        done = sweep_and_compare(["normalize"], {**ctx(tiny, 1), "callbacks": "mark_cell", "bs": "16"}, seeds=2,
                                 reference=False, results=tmp_path / "ray", executor="ray", address=cluster.address,
                                 log=lambda *a: None)
    finally:
        components._registry.pop(("callback", "mark_cell"), None)
    table = load_table(tmp_path / "ray")
    assert len(table) == 2 and (tmp_path / "marks.txt").read_text().split() == ["1", "1"]
    assert set(done.summary["name"]) == {"normalize"} and table["code"].str.startswith("callback:mark_cell=").all()
    kept = next((tmp_path / "ray" / "runs").glob("*")) / "code-callback-mark_cell.py"
    assert "class Mark(Callback)" in kept.read_text()
