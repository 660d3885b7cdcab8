"""Writes that never leave a half-written file or folder (temporary name, then rename), and the one file lock."""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path

from filelock import FileLock

from .errors import ToolkitError


def check_folder(folder: str | Path, what: str) -> Path:
    """`folder` as a place to write into (it may not exist yet: it is created), or a clear error that says which
    part of it is a file; `what` names the option, e.g. "--results"."""
    folder = Path(folder)
    for p in (folder, *folder.parents):
        if p.exists():
            if not p.is_dir():
                raise ToolkitError(f"{what} {folder} cannot be used: {p} is a file, not a folder. Give a folder "
                                   f"(created if missing).")
            break
    return folder


def write_atomic(dest: str | Path, write) -> Path:
    """Call `write(tmp_path)` on a temporary file next to `dest`, then rename it over `dest`."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; the result gets a new file's usual mode
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(dest: str | Path, value) -> Path:
    return write_atomic(dest, lambda p: Path(p).write_text(json.dumps(value, indent=2, default=str) + "\n"))


def tmp_prefix(dest: Path) -> str:
    """The name prefix of `dest`'s temporary folders: a leftover from a killed build matches `.{name}.tmp-*`."""
    return f".{Path(dest).name}.tmp-"


@contextlib.contextmanager
def atomic_dir(dest: str | Path, replace: bool = False):
    """Build a folder under a temporary name next to `dest` (yielded), then rename it to `dest`.

    On any exception the temporary folder is removed and `dest` is untouched. If `dest` exists when the build
    finishes: with `replace`, the old folder is moved aside and deleted; otherwise the existing one is kept
    (another process finished first) and ours is discarded.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{tmp_prefix(dest)}{os.getpid()}-{secrets.token_hex(3)}")
    tmp.mkdir()
    try:
        yield tmp
        if dest.exists() and replace:
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}-{secrets.token_hex(3)}")
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            try:
                os.rename(tmp, dest)  # fails if `dest` appeared meanwhile (a non-empty folder): keep theirs
            except OSError:
                if not dest.exists():
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def lock(path: str | Path, timeout: float = -1) -> FileLock:
    """An inter-process lock on `path` (filelock's), its folder made: two runs that append a row take turns."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path), timeout=timeout)
