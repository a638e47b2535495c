"""One way to write a whole file: atomically, durably, readable by others.

Every file rulelife writes whole (bundles, ``CURRENT``, datasets, tickets,
reports, quarantine files, settings, mined rules) goes through
:func:`atomic_path`, or :func:`atomic_write` on top of it:

1. a temporary file is made in the target's own folder (a rename is atomic
   only within one file system);
2. the writer fills it; the data is flushed to disk (``fsync``);
3. it is given ``mode`` (default ``0o644``: a runtime under another user must
   be able to read bundles and ``CURRENT``);
4. it is renamed over the target (``os.replace``) and the folder is flushed,
   so the rename itself survives a power cut.

A reader sees the old file or the new one, never half of one. If anything
fails before the rename, the temporary file is removed and the target is as
it was.

A temporary file is named ``.<target name>.<random>.tmp``: hidden, unique (two
writers never share one) and ending ``.tmp``, so nothing that picks files by
suffix (``*.parquet``, ``*.yaml``, ``bundle-*.rlb``) mistakes one for data. A
process killed mid-write leaves its temporary file behind; :func:`remove_temps`
finds them by that name. The bundle store removes every one in its folder
under its lock; every other write removes those of its folder once they are
:data:`STALE_AFTER` seconds old (a younger one may belong to a live writer).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["STALE_AFTER", "atomic_path", "atomic_write", "is_temp", "remove_temps"]

log = logging.getLogger(__name__)

# A writer rewrites its temporary file as it goes (or finishes in seconds), so
# one untouched for a day belongs to a process that is gone.
STALE_AFTER = 24 * 3600.0
_TEMP = re.compile(r"^\..+\.[^.]+\.tmp$")


def is_temp(name: str) -> bool:
    """Whether ``name`` is a temporary file of :func:`atomic_path`.

    >>> is_temp(".bundle-000007.rlb.k2j4_x9a.tmp"), is_temp("bundle-000007.rlb")
    (True, False)
    """
    return _TEMP.match(name) is not None


def remove_temps(folder: Path, *, older_than: float | None = None) -> int:
    """Remove the temporary files left in ``folder`` by interrupted writes; return how many.

    Only names :func:`is_temp` recognises are touched; ``older_than``
    (seconds) keeps those touched more recently. Without it, call this only
    while holding the folder's lock: a live writer's temporary file would go too.
    """
    cutoff = None if older_than is None else time.time() - older_than
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if not is_temp(entry.name):
            continue
        try:
            if cutoff is not None and entry.stat(follow_symlinks=False).st_mtime > cutoff:
                continue
            os.unlink(entry.path)
            removed += 1
        except FileNotFoundError:  # its writer finished or someone else removed it meanwhile
            continue
    return removed


@contextmanager
def atomic_path(path: Path | str, *, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary path to write; on a clean exit it becomes ``path`` atomically.

    For writers that need a path rather than bytes (pandas' and pyarrow's
    Parquet writers). An exception inside the block removes the temporary
    file and leaves ``path`` as it was. The folder is created if missing.

    >>> import shutil, tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with atomic_path(folder / "rows.csv") as tmp:
    ...     _ = tmp.write_text("a,b\\n1,2\\n")
    >>> (folder / "rows.csv").read_text()
    'a,b\\n1,2\\n'
    >>> try:
    ...     with atomic_path(folder / "rows.csv") as tmp:
    ...         _ = tmp.write_text("a,b\\n3")
    ...         raise RuntimeError("the writer died half way")
    ... except RuntimeError:
    ...     pass
    >>> (folder / "rows.csv").read_text(), sorted(p.name for p in folder.iterdir())
    ('a,b\\n1,2\\n', ['rows.csv'])
    >>> shutil.rmtree(folder)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stale = remove_temps(path.parent, older_than=STALE_AFTER)
    if stale:
        log.warning("removed %d temporary file(s) left in %s by interrupted writes", stale, path.parent)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _fsync(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync(path.parent)  # make the rename itself durable


def atomic_write(path: Path | str, data: bytes | str, *, mode: int = 0o644) -> None:
    """Write ``data`` (text is written as UTF-8) to ``path`` atomically; see :func:`atomic_path`.

    >>> import shutil, tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> atomic_write(folder / "CURRENT", '{"number": 1}\\n')
    >>> atomic_write(folder / "CURRENT", b'{"number": 2}\\n')
    >>> (folder / "CURRENT").read_text(), oct((folder / "CURRENT").stat().st_mode & 0o777)
    ('{"number": 2}\\n', '0o644')
    >>> shutil.rmtree(folder)
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(path, mode=mode) as tmp, open(tmp, "wb") as handle:
        handle.write(payload)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
