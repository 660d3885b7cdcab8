"""Errors the launcher turns into a one-paragraph message and a non-zero exit (never a traceback)."""


class ToolkitError(Exception):
    """Base class: the message is written for the user and says what to do."""


class RecipeError(ToolkitError, ValueError):
    """A recipe, or an override of one, is invalid."""


class RegistryError(ToolkitError, KeyError):
    """An experiment or suite name is unknown or already taken."""

    def __str__(self):  # KeyError would print the message quoted
        return str(self.args[0]) if self.args else ""


class DatasetError(ToolkitError):
    """A dataset cannot be found, downloaded or read."""


class RunInterrupted(ToolkitError):
    """Ctrl-C during a run: the finished epochs stay in the run folder, the results table is untouched."""
