"""Errors the launcher turns into a one-paragraph message and a non-zero exit (never a traceback)."""


class ToolkitError(Exception):
    """Base class: the message is written for the user and says what to do."""


class RecipeError(ToolkitError, ValueError):
    """A recipe, or an override of one, is invalid. `detail`: what is wrong, without naming the recipe."""

    def __init__(self, message: str, detail: str = ""):
        super().__init__(message)
        self.detail = detail or message


class RegistryError(ToolkitError, KeyError):
    """An experiment or suite name is unknown or already taken."""

    def __str__(self):  # KeyError would print the message quoted
        return str(self.args[0]) if self.args else ""


class DatasetError(ToolkitError):
    """A dataset cannot be found, downloaded or read."""


class RunInterrupted(ToolkitError):
    """Ctrl-C or SIGTERM during a run: its finished epochs and checkpoint stay in the run folder (it can resume),
    the results table keeps every finished run."""

    def __init__(self, message: str, terminated: bool = False):
        super().__init__(message)
        self.terminated = terminated


class Pruned(Exception):
    """A search's pruner stopped this trial after `epochs` epochs at `accuracy` (toolkit/sweep/search.py): its run
    is marked pruned, never resumed, and never a finished result."""

    def __init__(self, epochs: int, accuracy: float):
        super().__init__(f"pruned after {epochs} epoch(s) at accuracy {accuracy:.4f}")
        self.epochs, self.accuracy = epochs, accuracy


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C (a scheduler stopping the job): finished work kept, exit status 143."""


class CheckpointError(ToolkitError):
    """A checkpoint cannot be read, or holds more than tensors and plain values."""


class TableError(ToolkitError):
    """The results table is damaged: named with its file and line; it is never written to while damaged."""
