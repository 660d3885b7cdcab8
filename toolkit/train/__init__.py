"""Training: fit_and_evaluate(recipe) -> metrics (toolkit/train/learner.py), its callbacks (epoch log, checkpoints, deferred
interrupt), the evaluations' runners, MixUp/CutMix, checkpoint state, learning-rate schedules, models, and a recipe
resolved as it will run (toolkit/train/resolve.py). Nothing here records."""
