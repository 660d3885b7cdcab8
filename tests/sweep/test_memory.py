"""A sweep's memory stays flat: a finished run leaves no model behind, and run after run the process does not grow.

Measured in a fresh subprocess, so that nothing else the test session holds counts. bench/sweep_memory.py prints the
same figures, run by run, on real data.
"""
import json
import subprocess
import sys

import pytest

GROWTH_PER_RUN_MB = 50   # a leaked xresnet18 with its Adam state and gradients is about 190 MB

SCRIPT = """
import json, sys, weakref
from pathlib import Path
import toolkit_experiments, toolkit
from toolkit.train import learner

models = []
build = learner.build_learner
def spy(*args, **kwargs):
    learn = build(*args, **kwargs)
    models.append(weakref.ref(learn.model))
    return learn
learner.build_learner = spy

def anonymous_mb():
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(status["RssAnon"].split()[0]) / 1024

after = []
def log(message):
    if message.lstrip().startswith("accuracy "):   # a run finished and its row is recorded
        after.append({"anonymous_mb": anonymous_mb(), "models_alive": sum(m() is not None for m in models)})

toolkit.run("baseline", dataset=sys.argv[1], size=16, epochs=1, arch="xresnet18", bs=16, seeds=5, reference=False,
            results=sys.argv[2], quiet=True, log=log)
print(json.dumps({"after": after, "models_built": len(models)}))
"""


@pytest.mark.slow   # 13 s; bench/sweep_memory.py prints the same measure; `make test-all` runs it
def test_five_runs_in_one_process_leave_no_model_and_grow_little(tiny, tmp_path):
    p = subprocess.run([sys.executable, "-c", SCRIPT, str(tiny), str(tmp_path / "results")], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["models_built"] == 5 and len(out["after"]) == 5
    assert [a["models_alive"] for a in out["after"]] == [0] * 5   # each run's model is gone once its row is written
    anonymous = [a["anonymous_mb"] for a in out["after"]]
    per_run = (anonymous[-1] - anonymous[0]) / 4
    assert per_run <= GROWTH_PER_RUN_MB, f"anonymous memory after each run, MB: {anonymous}"


def test_the_collection_after_a_job_leaves_the_collector_as_it_found_it():
    """Frozen objects are thawed even when the job or the collection fails, and a caller's freeze stays its own."""
    import gc

    import pytest

    from toolkit.sweep.jobs import _collected

    @_collected
    def job(fail):
        assert gc.get_freeze_count() > 0   # what was alive before the job is frozen while it runs
        if fail:
            raise RuntimeError("the job failed")
        return "done"
    before = gc.get_freeze_count()
    assert job(False) == "done" and gc.get_freeze_count() == before
    with pytest.raises(RuntimeError, match="the job failed"):
        job(True)
    assert gc.get_freeze_count() == before
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        assert job(False) == "done" and gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()

