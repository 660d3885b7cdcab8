"""Recipes: the Recipe dataclass and the vocabulary its values are checked against, stage plans and config ids;
the evaluations, one spec each; the registry of named experiments and suites; how a recipe is labelled in a table.
No torch here."""
