"""A search shown: the trials, Optuna's own pictures of the study (the optimisation history, the parameters'
importance by fANOVA, a slice per parameter), and the confirmation of its best settings on fresh seeds beside
what the search scored them (toolkit/sweep/search.py runs it; toolkit/judgment/ judged the confirmation)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..atomic import write_atomic
from ..recipes.stages import stage_plan

IMPORTANCE_MIN = 5   # complete trials below which a fitted importance says nothing (fANOVA's random forest)

LATE_STARTERS = ("Pruning compares a trial's accuracy at an epoch with the other trials' at the same epoch: a "
                 "setting that starts slowly and finishes well (a late starter: a small learning rate, strong "
                 "regularization, a long warm-up) can be stopped before it shows it. What the pruner stopped is "
                 "not known to be worse; only the complete trials are ranked and confirmed.")


def pictures(search, prefix: Path) -> list[Path]:
    """PREFIX-history.png, PREFIX-slice.png and PREFIX-importance.png (fANOVA; see `importance_drawn`), drawn by
    Optuna's matplotlib backend."""
    import matplotlib.pyplot as plt  # headless machines fall back to Agg; notebooks keep their inline backend
    import optuna.visualization.matplotlib as ov
    from matplotlib.ticker import NullFormatter
    from optuna.exceptions import ExperimentalWarning
    import warnings
    drawn = {"history": lambda: ov.plot_optimization_history(search.study, target_name="accuracy"),
             "slice": lambda: ov.plot_slice(search.study, target_name="accuracy")}
    if importance_drawn(search):
        from optuna.importance import FanovaImportanceEvaluator
        drawn["importance"] = lambda: ov.plot_param_importances(
            search.study, evaluator=FanovaImportanceEvaluator(seed=0), params=_varied(search), target_name="accuracy")
    out = []
    for what, draw in drawn.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            ax = draw()
        axes = list(ax.flat) if hasattr(ax, "flat") else [ax]
        for a in axes:   # a log axis over less than a decade labels its minor ticks too, one over another
            if a.get_xscale() == "log":
                a.xaxis.set_minor_formatter(NullFormatter())
        fig = axes[0].figure
        out.append(write_atomic(Path(f"{prefix}-{what}.png"),
                                lambda p, fig=fig: fig.savefig(p, dpi=110, bbox_inches="tight", format="png")))
        plt.close(fig)
    return out


def _complete(search) -> list:
    import optuna
    return [t for t in search.study.trials if t.state == optuna.trial.TrialState.COMPLETE]


def _varied(search) -> list[str]:
    return [k for k in search.dims if len({t.params.get(k) for t in _complete(search)}) > 1]


def importance_drawn(search) -> bool:
    """fANOVA's importance is fitted on the complete trials: drawn from IMPORTANCE_MIN of them on, over two or more
    parameters that varied (one parameter alone explains all there is)."""
    return len(_complete(search)) >= IMPORTANCE_MIN and len(_varied(search)) >= 2


def optimism(search, picks: list, confirmed: pd.DataFrame | None, variants: dict[str, dict] | None = None):
    """Each confirmed setting of `picks` ([(settings, the search's score)]): what the search scored it (its trial, one seed), its accuracy and Δ against the
    recipe on fresh seeds (with the interval and verdict the confirmation judged), and the search's optimism: its
    score less the fresh seeds' mean, in points. `variants`: {a confirmation row's name: the settings that made
    it} (the confirmation's plan); settings that made none are the recipe's own, whose row is the recipe's.
    `params` keeps each setting as JSON."""
    rows = []
    if confirmed is None:
        return pd.DataFrame(rows)
    by_settings = {_key(t): name for name, t in (variants or {}).items()}
    for params, score in picks:
        name = by_settings.get(_key(params), search.recipe.name)
        line = confirmed[confirmed["name"] == name]
        if line.empty:
            continue
        c = line.iloc[0]
        own = name == search.recipe.name
        rows.append({"setting": ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())
                     + (" (the recipe's own)" if own else ""),
                     "search %": round(100 * score, 2), "fresh seeds": c["seeds"],
                     "fresh %": round(100 * c["accuracy_mean"], 2),
                     "Δ vs recipe": "" if own else f"{100 * c['delta_mean']:+.1f} [{100 * c['delta_low']:+.1f}, "
                                                   f"{100 * c['delta_high']:+.1f}]",
                     "verdict": "(reference)" if own else c["delta_verdict"],
                     "optimism (pts)": round(100 * (score - c["accuracy_mean"]), 2),
                     "params": json.dumps(params)})
    return pd.DataFrame(rows)


def _key(settings: dict) -> tuple:
    """Settings as their labels write them, to match a trial's with a plan's."""
    from ..recipes.identity import format_value
    from ..recipes.overrides import check_settings
    return tuple(sorted((k, format_value(getattr(check_settings({k: v}, k), k))) for k, v in settings.items()))


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def markdown(search, pngs: list[Path], confirmation: str = "", table: pd.DataFrame | None = None,
             full_data: str = "", forests: tuple = ()) -> str:
    """The search's report: its setup, the trials (best first), what pruning cannot see, its pictures, and the
    section "Confirmation"."""
    t = search.trials
    states = t["state"].value_counts().to_dict() if len(t) else {}
    r = search.recipe
    done = t[t["state"].isin(["complete", "pruned"])] if len(t) else t
    epochs = int(pd.to_numeric(done["epochs run"], errors="coerce").fillna(0).sum()) if len(t) else 0
    full = sum(k for _, k, *_ in stage_plan(r, r.size))
    shown = t.sort_values("accuracy", ascending=False, na_position="last")
    cols = ["trial", "state", *search.dims, "accuracy", "epochs run"]
    shown = shown[[c for c in cols if c in shown]].assign(
        accuracy=lambda d: (100 * pd.to_numeric(d["accuracy"], errors="coerce")).round(2))
    parts = [
        f"# Search of {r.name} over {', '.join(search.dims)}",
        f"Study `{search.name}` ({search.storage}): sampler {search.sampler}, pruner {search.pruner}; "
        f"{len(t)} trial(s): " + ", ".join(f"{n} {s}" for s, n in states.items()) + f". Every trial ran on seed "
        f"{r.seed}, {full} epoch(s) at {r.size} px on {Path(str(r.dataset)).name}: {epochs} epochs run for its "
        f"complete and pruned trials (a full run of each: {len(done) * full}; a trial the table held already "
        f"ran none). This call ran {search.ran} trial(s) in "
        f"{search.seconds / 60:.1f} min. Space: `{' '.join(d.spec() for d in search.dims.values())}`.",
        "A trial's accuracy is one run on one seed: the best of many such numbers is biased upward (the winner's "
        "curse). The confirmation below measures the best settings again on fresh seeds.",
        "Trials, best first (accuracy %: final, or the last epoch's where pruned):\n\n"
        + shown.to_markdown(index=False),
    ]
    if search.pruner != "none":
        parts.append(LATE_STARTERS)
    if pngs:
        n = states.get("complete", 0)
        parts.append("Pictures (Optuna): " + ", ".join(f"[{p.stem.rsplit('-', 1)[-1]}]({p.name})" for p in pngs)
                     + (f". The importance (fANOVA) is fitted on the {n} complete trials: a rough guide on a few "
                        f"dozen." if importance_drawn(search) else
                        f". No importance: fANOVA fits it on the complete trials, and {n} (of at least "
                        f"{IMPORTANCE_MIN}, over two or more parameters that varied) say nothing of it."))
    parts.append("## Confirmation")
    if table is not None and len(table):
        parts.append(f"The {len(table)} best setting(s) of the search and {r.name} itself on fresh seeds "
                     f"({table['fresh seeds'].iloc[0]}), judged as one family against {r.name}; beside them, what "
                     f"the search scored each (one run, seed {r.seed}) and its optimism: that score less the fresh "
                     f"seeds' mean.\n\n" + table.drop(columns=["params"]).to_markdown(index=False))
    if confirmation:
        parts.append(confirmation)
    if len(forests) > 0:
        parts.append(f"Forest plot of the confirmation: [{forests[0].name}]({forests[0].name})")
    if full_data:
        parts.append("## On the full data\n\n" + full_data
                     + (f"\n\nIts plot: [{forests[1].name}]({forests[1].name})" if len(forests) > 1 else ""))
    return "\n\n".join(parts) + "\n"
