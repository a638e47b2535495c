"""Query logs that live in an object store or a cluster filesystem.

A ``--log`` that names a URI (``s3://bucket/log/``, ``gs://…``,
``hdfs://…``) is opened through :func:`pyarrow.fs.FileSystem.from_uri`;
any other scheme (``az://``, ``memory://``, …) through fsspec, when it is
installed (``pip install 'rulelife[remote]'``). ``file://`` is a local
path. Credentials and endpoints come from where each filesystem looks for
them (``AWS_*`` variables, ``~/.aws``, ``AWS_ENDPOINT_URL``, or URI query
parameters such as ``?endpoint_override=host:port&scheme=http``).

A remote file is a :class:`RemoteFile`: the few things the reader needs
of a path (name, day folders, size and modification time for the
validation cache) and a way to open it. It never passes for a local path,
so nothing opens ``s3://…`` with ``open()`` by mistake.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import SimpleNamespace
from urllib.parse import unquote, urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from rulelife.errors import LogError, clip

__all__ = ["RemoteFile", "is_uri", "list_remote", "local_path"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def is_uri(item: object) -> bool:
    """True for a string naming a filesystem URI (``scheme://…``); a Windows drive ``C:\\`` is no URI."""
    return isinstance(item, str) and _SCHEME.match(item) is not None


def local_path(uri: str) -> Path | None:
    """The local path of a ``file://`` URI, else None."""
    parts = urlsplit(uri)
    if parts.scheme.lower() != "file":
        return None
    if parts.netloc not in ("", "localhost"):
        raise LogError(f"{uri}: a file:// URI names a path on this machine (file:///path), not on host {parts.netloc!r}")
    return Path(unquote(parts.path))


@dataclass(frozen=True)
class RemoteFile:
    """One log file on a remote filesystem. Equal and hashed by ``uri``; picklable (pool workers get it whole)."""

    uri: str  # scheme://path, what messages, reports and quarantine rows name
    path: str  # the path inside ``filesystem``
    size: int
    mtime_ns: int | None  # None where the store keeps no modification time: the file is then never cached
    filesystem: pafs.FileSystem = field(compare=False, repr=False)

    def __str__(self) -> str:
        return self.uri

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name

    @property
    def stem(self) -> str:
        return PurePosixPath(self.path).stem

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.path).suffix

    @property
    def parents(self):
        return PurePosixPath(self.path).parents

    def stat(self) -> SimpleNamespace:
        return SimpleNamespace(st_size=self.size, st_mtime_ns=self.mtime_ns)

    def resolve(self) -> RemoteFile:
        return self

    def open(self) -> pa.NativeFile:
        """A seekable binary file (Parquet reads the footer first)."""
        try:
            return self.filesystem.open_input_file(self.path)
        except (OSError, pa.ArrowException) as exc:
            raise LogError(f"{self.uri}: cannot open the file ({clip(str(exc))})") from None


def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    try:
        return pafs.FileSystem.from_uri(uri)
    except pa.ArrowInvalid as exc:
        if "Unrecognized filesystem type" not in str(exc):
            raise LogError(f"{uri}: not a filesystem URI pyarrow can open ({clip(str(exc))})") from None
    except (OSError, pa.ArrowException) as exc:  # e.g. hdfs:// without libhdfs, a malformed bucket name
        raise LogError(f"{uri}: cannot open its filesystem ({clip(str(exc))})") from None
    try:
        import fsspec
        from pyarrow.fs import FSSpecHandler, PyFileSystem
    except ImportError:
        raise LogError(f"{uri}: pyarrow has no filesystem for {urlsplit(uri).scheme}:// and fsspec is not installed; "
                       "install it with pip install 'rulelife[remote]' (plus the scheme's fsspec package)") from None
    try:
        fs, path = fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError, OSError) as exc:
        raise LogError(f"{uri}: fsspec cannot open this URI ({clip(str(exc))})") from None
    return PyFileSystem(FSSpecHandler(fs)), path


def _mtime_ns(info: pafs.FileInfo) -> int | None:
    mtime = info.mtime_ns
    return int(mtime) if mtime else None


def list_remote(uri: str, suffixes: tuple[str, ...]) -> list[RemoteFile]:
    """The log files at ``uri``: the file itself, or every ``suffixes`` file under the folder (recursively).

    Hidden and ``_``-prefixed entries are skipped, as in a local folder.
    Raises :class:`~rulelife.errors.LogError` naming the URI when nothing is
    there (a missing bucket or key) or the store refuses the listing.
    """
    filesystem, root = _filesystem(uri)
    scheme = urlsplit(uri).scheme.lower()
    base = uri.split("?", 1)[0].rstrip("/")

    def remote(info: pafs.FileInfo) -> RemoteFile:
        rest = info.path[len(root.rstrip("/")):].lstrip("/")
        return RemoteFile(uri=f"{base}/{rest}" if rest else base, path=info.path, size=int(info.size or 0),
                          mtime_ns=_mtime_ns(info), filesystem=filesystem)

    try:
        info = filesystem.get_file_info(root)
        if info.type == pafs.FileType.File:
            if PurePosixPath(root).suffix.lower() not in suffixes:
                raise LogError(f"{uri}: a query log file must be .parquet or .csv")
            return [remote(info)]
        if info.type != pafs.FileType.Directory:
            raise LogError(f"query log not found: {uri} does not exist (no such bucket, folder or file); "
                           f"check the URI and the credentials for {scheme}://")
        found = filesystem.get_file_info(pafs.FileSelector(root, recursive=True))
    except LogError:
        raise
    except (OSError, pa.ArrowException) as exc:
        raise LogError(f"{uri}: cannot list the query log ({clip(str(exc), 300)}); check the URI and the "
                       f"credentials for {scheme}://") from None
    prefix = root.rstrip("/")
    files = sorted(
        (remote(i) for i in found
         if i.type == pafs.FileType.File and PurePosixPath(i.path).suffix.lower() in suffixes
         and not any(part.startswith((".", "_")) for part in PurePosixPath(i.path[len(prefix):].lstrip("/")).parts)),
        key=lambda f: f.path)
    if not files:
        raise LogError(f"no *.parquet or *.csv file under {uri}: point to the folder that holds the query log")
    return files
