"""`toolkit noise` on a results table that already holds its 2K seeds: the numbers it prints, from scipy, without
training; and its bad inputs."""
import numpy as np
import pytest

from toolkit import api
from toolkit.errors import ToolkitError
from toolkit import stats

from conftest import CONTEXT, add_rows


def test_noise_reads_the_a_a_spread_and_prices_a_question(results):
    acc = np.array([0.90, 0.93, 0.88, 0.91, 0.95, 0.92, 0.89, 0.90, 0.94, 0.93])
    add_rows(results, "baseline", acc)
    said = []
    r = api.noise("baseline", results=results, quiet=True, log=said.append, **CONTEXT)
    assert "skipped 10 finished run(s)" in said[-1]                      # reused: nothing trained
    aa = acc[:5] - acc[5:]
    assert r.aa == pytest.approx(aa) and r.aa_sd == pytest.approx(np.std(aa, ddof=1))
    md = r.markdown()
    assert f"| seed-to-seed std of the accuracy | {100 * np.std(acc, ddof=1):.1f} |" in md
    assert f"| A/A: std of the 5 differences seed i - seed 5+i (95% CI) | {100 * r.aa_sd:.1f} [" in md
    assert f"binomial SE on 359 validation images | {100 * stats.binomial_se(acc.mean(), 359):.1f} |" in md
    detect = [f"{100 * stats.detectable(n, r.aa_sd):.1f}" for n in (3, 5, 10, 20)]
    assert "| detectable Δ, points | " + " | ".join(detect) + " |" in md
    assert "| time here | 60 s | 2 min | 3 min | 7 min |" in md          # 10 s per run, both sides
    n = int(np.arange(3, 51)[stats.power_difference(np.arange(3, 51), 0.02, r.aa_sd) >= 0.8][0])
    assert f"a fixed number of seeds needs {n} pairs = {2 * n} runs" in md and "upper bound" in md
    assert r.written[0] == results / "noise-baseline.md" and r.written[0].read_text().strip() == md


def test_the_launcher_prints_it_and_says_where_it_is(results, capsys):
    from test_cli import launch
    add_rows(results, "baseline", [0.90, 0.93, 0.88, 0.91, 0.95, 0.92, 0.89, 0.90, 0.94, 0.93])
    code, out, _ = launch(["noise", "baseline", "--dataset", "digits", "--set", "arch=xresnet18", "--results", results,
                           "--effect", "3"], capsys)
    assert code == 0 and "| detectable Δ, points |" in out and "A question of 3 points" in out
    assert f"Written: {results / 'noise-baseline.md'}" in out


def test_noise_bad_inputs_are_clear_errors(results):
    with pytest.raises(ToolkitError, match="--k must be a whole number of at least 2"):
        api.noise("baseline", k=1, results=results, **CONTEXT)
    with pytest.raises(ToolkitError, match="measures one experiment"):
        api.noise("mixup*", results=results, **CONTEXT)
    with pytest.raises(ToolkitError, match="--effect is a difference"):
        api.noise("baseline", effect=0, results=results, **CONTEXT)
