"""Grids: --vary with several values, typed and checked; the rows judged as one family; the best said as a set;
the pick confirmed on fresh seeds (one tiny real grid)."""
import pandas as pd
import pytest

from toolkit import api
from toolkit.errors import RecipeError
from toolkit.sweep import plan

DIGITS = {"dataset": "digits", "arch": "xresnet18"}


def test_a_grid_is_typed_and_its_lists_unambiguous():
    assert plan.treatments(["lr=1e-4,1e-3"]) == [{"lr": 1e-4}, {"lr": 1e-3}]
    assert plan.treatments(["tta=flip,crops"]) == [{"tta": "flip,crops"}]            # a text value keeps its commas
    assert plan.treatments(["tta=flip", "tta=crops"]) == [{"tta": "flip"}, {"tta": "crops"}]   # repeated: a list
    assert plan.treatments(["lr=1e-3", "lr=1e-2"]) == [{"lr": 1e-3}, {"lr": 1e-2}]   # no longer keeps only the last
    assert plan.treatments({"lr": [1e-3, 1e-3, 1e-2], "bs": 32}) == [{"lr": 1e-3, "bs": 32}, {"lr": 1e-2, "bs": 32}]
    assert len(plan.treatments(["lr=1e-3,1e-2", "label_smoothing=0,0.1"])) == 4           # keys multiplied
    with pytest.raises(RecipeError, match="Bad value 'x' for recipe key 'lr'"):
        plan.treatments(["lr=1e-3,x"])
    with pytest.raises(RecipeError, match="expected int, got float"):
        plan.treatments({"epochs": [1, 2.5]})                                            # Python values checked too
    with pytest.raises(RecipeError, match="grid of 30 variants .* --grid-max 30"):
        plan.treatments(["lr=1,2,3,4,5", "bs=1,2,3,4,5,6"])
    assert len(plan.treatments(["lr=1,2,3,4,5", "bs=1,2,3,4,5,6"], limit=30)) == 30


def test_a_grid_value_that_is_the_recipes_own_is_the_recipe_itself():
    ctx = plan.context_of(DIGITS)
    names = [r.name for r in plan.recipes_of(["normalize"], ctx, ["lr=3e-3,1e-2"])]
    assert names == ["normalize [lr=0.01]"]
    line = plan.grid_line(["normalize"], ctx, ["lr=3e-3,1e-2"], 3)
    assert "1 variant(s)" in line and "lr=0.003 is normalize's own" in line and "6 runs" in line


def test_a_tiny_grid_judged_as_one_family_with_its_best_set_and_figure(tiny, tmp_path):
    said = []
    result = api.run("normalize", seeds=3, vary={"lr": [1e-2, 3e-2]}, dataset=str(tiny), size=16, epochs=1,
                     arch="xresnet18", bs=16, results=tmp_path / "r", quiet=True, log=said.append)
    assert any(m.startswith("grid: 2 value(s) x 1 recipe(s): 2 variant(s)") for m in said)
    rows = result.summary.set_index("name")
    variants = rows.loc[["normalize [lr=0.01]", "normalize [lr=0.03]"]]
    assert (variants["family"] == "holm over 2 rows").all() and variants["delta_p_family"].notna().all()
    assert (variants["delta_p_family"] >= variants["delta_p"]).all()                  # Holm only ever raises a p
    assert variants["delta_wins"].str.contains(" of 3").all() and "Δ>0 on seeds" in result.markdown
    assert (variants["delta_basis"] == "seeds and images").all()          # judged on the runs' predictions
    assert "on new images like these" in result.markdown
    assert "judged as one family (Holm" in result.markdown
    (grid,) = result.grids
    assert list(grid.accuracy.columns) == ["lr=0.003", "lr=0.01", "lr=0.03"] and len(grid.accuracy) == 3
    assert grid.best and set(grid.best) <= set(grid.accuracy.columns) and grid.pick in grid.best
    assert grid.accuracy[grid.pick].mean() == grid.accuracy[grid.best].mean().max()
    assert "Best of the grid of normalize over lr" in result.markdown
    from PIL import Image
    png = next(p for p in result.written if p.name.endswith("-grid.png"))
    assert Image.open(png).size[0] > 500
    with pytest.raises(Exception, match="--confirm confirms the pick of a grid"):
        api.run("normalize", seeds=3, confirm=True, dataset=str(tiny), size=16, epochs=1, arch="xresnet18", bs=16,
                results=tmp_path / "r", quiet=True, log=said.append)

    # the pick, made a grid value whatever the tiny grid chose, confirmed on fresh seeds
    from dataclasses import replace
    from toolkit.sweep.options import Options
    picked = replace(grid, pick="lr=0.03")
    ctx = api.context(dataset=str(tiny), size=16, epochs=1, arch="xresnet18", bs=16)
    from toolkit.judgment.summary import judged
    from toolkit.sweep import confirm as confirming
    plans, n = confirming.grid_picks([picked], ctx, None, said.append)
    again = confirming.confirm(plans, n, Options(results=str(tmp_path / "r"), progress="none"), said.append, 1.0)
    confirmed = api.Comparison(judged(again.involved, again.table, margin=1.0, family="none")[1])
    table = pd.read_csv(tmp_path / "r" / "runs.csv")
    confirm = table[table["confirm"].astype(str) == "True"]
    assert sorted(confirm["seed"].unique()) == [45, 46, 47]                        # fresh: after 42-44
    assert set(confirm["name"]) == {"normalize", "normalize [lr=0.03]"}
    assert not set(confirm["config_id"]) & set(table[table["confirm"].astype(str) != "True"]["config_id"])
    result.confirmed = confirmed
    (line,) = result.confirm_lines()
    assert line.startswith("normalize [lr=0.03]: Δ") and "on fresh seeds (45,46,47)" in line
    assert "Confirmation on fresh seeds" in result.markdown
