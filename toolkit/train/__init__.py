"""Training: run(recipe) -> metrics (toolkit/train/learner.py), its callbacks (epoch log, checkpoints, deferred
interrupt), MixUp/CutMix, checkpoint state, learning-rate schedules and models. Nothing here records."""
