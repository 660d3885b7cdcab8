"""The defaults several stages share and the launcher's help states, each declared once, here (importing nothing).

A recipe's own defaults are its fields' (toolkit/recipes/recipe.py: `Recipe.presize`, ...); a sweep's options are
`toolkit/sweep/options.py`'s fields.
"""
MARGIN = 1.0                                # points: the margin of practical equivalence of a verdict (--margin)
MAX_SEEDS = 10                              # --seeds auto: the most pairs a row may spend (--max-seeds)
LOOKS = (3, 5, 7, 10, 15, 20, 30, 40, 50)   # --seeds auto: the planned looks, those below --max-seeds, then it
CHECKPOINT_EVERY = 60.0                     # seconds between checkpoints at the most (--checkpoint-every); or 50
CHECKPOINT_COST = 50                        #   times what the last write took, if longer: under 2% of the time
FAMILIES = ("holm", "none")                 # --family: Holm's step-down over a comparison's rows, or each row alone
GRID_MAX = 24                               # --vary: the most variants a grid may make unless --grid-max says more
NOISE_K = 5                                 # `toolkit noise`: A/A pairs, so 2K seeds (--k)
NOISE_EFFECT = 2.0                          # points: the difference whose cost `toolkit noise` prices (--effect)
# a proxy of the easiest images (select=easy): the short run that ranks the full data's training images by loss
SELECT = ("random", "easy")   # how a proxy picks its training images (toolkit/studies/proxies.py)
EASY_RANKING = {"recipe": "baseline", "epochs": 2, "seed": 0}
SAMPLERS = ("tpe", "random", "grid")       # `toolkit search --sampler`: Optuna's TPE (the default), random, grid
PRUNERS = ("none", "halving", "hyperband")  # `toolkit search --pruner`: none, successive halving, Hyperband
SEARCH_TOP = 3                              # `toolkit search`: the best settings confirmed on fresh seeds (--top)
SEARCH_SEEDS = 3                            #   and the fresh seeds each runs (--seeds)
CONNECT_TIMEOUT = 5                         # seconds a tracking server or a Ray cluster may take to answer
# `toolkit bench data` (toolkit/train/throughput.py): the run it times unless told otherwise
BENCH_DATA = {"dataset": "imagenette-160", "size": 64, "arch": "xresnet18", "bs": 64, "loader_batches": 50,
              "repeats": 1, "out": "results/bench"}
