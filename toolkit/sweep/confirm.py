"""--confirm: a selection's picks measured again on fresh seeds, after every seed the selection used, each pick
beside its recipe, recorded with confirm=true so that its runs never pool with the selection's: plans of their own,
run as any sweep is. Picking the best on the seeds that ranked it overstates what it buys (the winner's curse);
fresh seeds measure it without that bias."""
from __future__ import annotations

import pandas as pd

from .auto import sweep
from .execute import Sweep
from .options import Options
from .plan import Plan


def fresh(context: dict, first: int) -> dict:
    """The context of a confirmation: seeds from `first` on, its runs marked confirm=true."""
    return {**context, "seed": str(first), "confirm": "true"}


def grid_picks(grids, context: dict, against: str | None = None, log=print) -> tuple[list[Plan], int]:
    """The plans that confirm each grid's pick (toolkit/judgment/grid.py) on fresh seeds, and their seeds: as many
    as the grid had, from the first seed after every seed it used. ([], 0) when every grid picked its recipe's own
    value."""
    picks = [g for g in grids if g.pick != g.own]
    if not picks:
        log("--confirm: every grid picked its recipe's own value; nothing to confirm.")
        return [], 0
    first = 1 + max(int(s) for g in grids for s in g.accuracy.index)
    n = max(len(g.accuracy) for g in picks)
    plans = []
    for g in picks:
        log(f"--confirm: {g.recipe} [{g.pick}] and {g.recipe} on {n} fresh seeds ({first}-{first + n - 1})")
        plans.append(Plan.of([g.recipe], fresh(context, first), against=against,
                             grid=[g.pick_treatment]))
    return plans, n


def confirm(plans: list[Plan], seeds: int, options: Options = Options(), log=print, margin: float | None = None,
            family: str = "none", question: str = "new-images") -> Sweep:
    """Run each confirming plan with `seeds` seeds: what they ran, as one sweep (its `involved` rows are what the
    confirmation compares)."""
    from .. import stats
    done = [sweep(p, seeds, None, stats.MARGIN if margin is None else margin, options, log, family, question)[0]
            for p in plans]
    return Sweep([j for d in done for j in d.jobs], pd.concat([d.rows for d in done]),
                 pd.concat([d.involved for d in done]), done[-1].table)
