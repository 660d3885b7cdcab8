"""Writes that never leave a half-written file: write under a temporary name, then rename."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def write_atomic(dest: str | Path, write) -> Path:
    """Call `write(tmp_path)` on a temporary file next to `dest`, then rename it over `dest`."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def write_json(dest: str | Path, value) -> Path:
    return write_atomic(dest, lambda p: Path(p).write_text(json.dumps(value, indent=2, default=str) + "\n"))
