"""The registered experiments. Importing this package registers every module listed here, explicitly."""
from . import chapter7  # noqa: F401
from . import literature  # noqa: F401
