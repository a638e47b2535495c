"""Bundles: immutable, versioned, checksummed artifacts of the active rules
(and of the shadow rules, flagged, which the runtime matches but never serves).

A bundle file ``bundle-000042.rlb`` is::

    RULELIFE-BUNDLE 1\\n
    <header JSON>\\n
    <rules JSON><compiled state pickle><automaton node data>

A bundle holding shadow rules starts ``RULELIFE-BUNDLE 2``: a rulelife that
predates shadow rules refuses it (and keeps serving its last good bundle)
instead of reading the shadow rules as serving ones. A bundle without shadow
rules is byte for byte the format it always was.

A bundle holding the safety lexicon (see :mod:`rulelife.rules.lexicon`) starts
``RULELIFE-BUNDLE 3`` for the same reason, and its lexicon JSON
(``{"version": ..., "phrases": [...]}``, phrases normalised) follows the rules
JSON; the content hash and the checksum cover it, and the header names its
version. A bundle without a lexicon is the format it was before.

The header carries the bundle number, creation time, rulelife and
normalisation versions, the content hash (rules, lexicon and normalisation
version only, so equal content has an equal hash whatever its number;
recomputed on every load, and a runtime reloading equal content keeps the
matcher it has), the SHA-256 of the compiled part (``compiled_sha256``) and a
checksum (SHA-256) over the header and the readable part, so a truncated or
edited file is refused, and a load that does not need the compiled part (equal
content, or a matcher derived from the one in service, see
:mod:`rulelife.serving.lineage`) reads 5 MB of a 58 MB bundle instead of all
of it. A bundle written before ``compiled_sha256`` has one checksum over
everything and is read whole; a rulelife that predates it refuses a bundle
that has it (its checksum does not cover the compiled part the old way) and
keeps serving its last good one.

The compiled state is what the matcher's hot path reads (per-rule columns, key
table, automata; see :meth:`~rulelife.rules.matcher.Matcher.state`), so a load
rebuilds nothing: a pickle of plain containers (its long lists in slices of
their own, so request threads run between them), unpickled with every global
refused, then each automaton's node data as raw bytes (sizes in the header),
which pyahocorasick builds from in place. A compiled state that is anything
but what rulelife writes is refused as tampering; one written for another
pyahocorasick (``automaton_format``) is rebuilt from the readable rules.

With a signing key (:mod:`rulelife.serving.signing`) the header also carries
an Ed25519 signature of the checksum and the key's fingerprint; a reader given
the public key refuses an unsigned or wrongly signed bundle before decoding
any of it.

``CURRENT`` names the published bundle and its checksum. Bundles and
``CURRENT`` are written atomically (:mod:`rulelife._files`: a temporary file,
fsync, rename), so a reader sees the old or the new pointer, never half of
one, and mode 0644, so a runtime under another user can read them. Rollback
is re-pointing ``CURRENT``; ``PIN`` (written by a rollback, removed by an
unpin) says which bundle publishing must leave in place, by whom and why.
``history.jsonl`` has one line per move of ``CURRENT`` (and per unpin): when,
what, the bundle before, who and why. A build or publish first removes the
temporary files a killed one left in the folder.
"""

from __future__ import annotations

import fcntl
import functools
import gc
import hashlib
import io
import json
import logging
import os
import pickle
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from pathlib import Path
from queue import SimpleQueue
from typing import TYPE_CHECKING, NamedTuple

import ahocorasick

from rulelife._files import atomic_write, remove_temps
from rulelife._version import __version__
from rulelife.errors import BundleError, BundleIntegrityError
from rulelife.rules.matcher import CompiledRule, LexiconPhrase, Matcher, compile_lexicon, compile_rule
from rulelife.rules.normalize import NORMALIZATION_VERSION
from rulelife.serving import signing
from rulelife.serving.lineage import Lineage

if TYPE_CHECKING:  # the pydantic models are for annotations only: serving never loads them
    from rulelife.config import Settings, Workspace
    from rulelife.rules.definition import Rule

__all__ = ["Bundle", "BundleDiff", "BundleStore", "Pin", "PublishResult", "ServingSettings", "diff_bundles",
           "read_bundle"]

MAGIC = b"RULELIFE-BUNDLE 1\n"
MAGIC_SHADOW = b"RULELIFE-BUNDLE 2\n"  # the same layout, with shadow rules (see the module docstring)
MAGIC_LEXICON = b"RULELIFE-BUNDLE 3\n"  # with a safety lexicon section (see the module docstring)
_MAGICS = (MAGIC, MAGIC_SHADOW, MAGIC_LEXICON)
_NAME = re.compile(r"^bundle-(\d{6,})\.rlb$")
_UNCHECKED = ("checksum", "signature")
_MAX_HEADER = 1 << 20  # bytes: a header is a few hundred; a longer line is no header  # header fields the checksum cannot cover: they are made from it
# What the compiled state is: the automaton's library and pickle protocol, and the
# matcher state layout. A bundle of another format is rebuilt from its rules.
_UNSLICED_FORMAT = f"pyahocorasick-{package_version('pyahocorasick')}-raw+{Matcher.STATE_FORMAT}"
# Since the state is written in slices (see _dump_state); a bundle of the format
# before, one pickle, is the same stream without slices and is read as it is.
_AUTOMATON_FORMAT = _UNSLICED_FORMAT + "+sliced"
_SLICE = 8192  # items of a state list per pickle: unpickling one takes about a millisecond at 100K patterns

log = logging.getLogger(__name__)


class ServingSettings(NamedTuple):
    """What the runtime must agree on with the workspace; it travels in the bundle header.

    ``shadow_rate``: the share of rule answers also sent to the model.
    ``max_text_length``: the longest message (in characters) a rule may
    answer; a longer one goes to the model, which bounds what one request
    costs the matcher.
    """

    # The workspace defaults (rulelife.config.Settings; a test keeps them equal),
    # served by a bundle built without settings.
    shadow_rate: float = 0.05
    max_text_length: int = 4096

    @classmethod
    def from_settings(cls, settings: Settings) -> ServingSettings:
        return cls(settings.shadow_rate, settings.max_text_length)

    @classmethod
    def from_header(cls, data: dict) -> ServingSettings:
        """The header's ``serving`` object; a key a newer rulelife added is ignored, a missing one is the default."""
        rate = data.get("shadow_rate", cls._field_defaults["shadow_rate"])
        length = data.get("max_text_length", cls._field_defaults["max_text_length"])
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
            raise ValueError(f"shadow_rate must be a number between 0 and 1, got {rate!r}")
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise ValueError(f"max_text_length must be a positive integer, got {length!r}")
        return cls(float(rate), length)

    def to_header(self) -> dict:
        return {"shadow_rate": self.shadow_rate, "max_text_length": self.max_text_length}


@dataclass(frozen=True)
class Bundle:
    """A loaded, verified bundle and the matcher compiled from it.

    ``rules`` holds every rule of the bundle, serving and shadow (flagged),
    sorted by id; the matcher serves only the former.
    """

    number: int
    created_at: str
    rulelife_version: str
    normalization_version: int
    content_hash: str
    checksum: str
    matcher: Matcher
    path: Path | None = None
    lexicon_version: str | None = None  # None: the bundle holds no safety lexicon
    serving: ServingSettings | None = None  # None: built without workspace settings (the runtime's defaults)
    signing_key: str | None = None  # the fingerprint of the key that signed it; None: unsigned
    # The bundle loaded whole that this one's matcher derives from (itself, when loaded whole):
    # what a later load derives from (see rulelife.serving.lineage). None: nothing derives from it.
    lineage: Lineage | None = field(default=None, compare=False, repr=False)

    @functools.cached_property
    def rules(self) -> tuple[CompiledRule, ...]:
        """Every rule of the bundle, serving and shadow (flagged), sorted by id (decoded on first use)."""
        return tuple(sorted((*self.matcher.rules, *self.matcher.shadow_rules), key=lambda r: r.id))

    @property
    def pattern_count(self) -> int:
        return self.matcher.pattern_count

    @property
    def lexicon(self) -> tuple[LexiconPhrase, ...]:
        return self.matcher.lexicon

    @property
    def shadow_rules(self) -> tuple[CompiledRule, ...]:
        return self.matcher.shadow_rules

    def summary(self) -> dict:
        return {
            "number": self.number,
            "created_at": self.created_at,
            "rulelife_version": self.rulelife_version,
            "normalization_version": self.normalization_version,
            "content_hash": self.content_hash,
            "checksum": self.checksum,
            "rules": len(self.rules),
            "patterns": self.pattern_count,
            "lexicon_version": self.lexicon_version,
            "lexicon_phrases": len(self.lexicon),
            "serving": self.serving.to_header() if self.serving else None,
            "signed_by": self.signing_key,
            "path": str(self.path) if self.path else None,
        }


class _CompiledOnly(pickle.Unpickler):
    """Unpickle the compiled matcher state: plain containers, strings and
    numbers, nothing else. It names no global (the automata travel as raw
    bytes beside it), so any global is refused before it is looked up and a
    bundle cannot run code when it is loaded."""

    def find_class(self, module: str, name: str):
        raise _ForeignGlobal(f"{module}.{name}")


class _ForeignGlobal(pickle.UnpicklingError):
    """The compiled state names a global rulelife never writes there."""


def _rules_json(rules: Sequence[CompiledRule]) -> bytes:
    ordered = sorted(rules, key=lambda r: r.id)
    return json.dumps([r.to_dict() for r in ordered], ensure_ascii=False, separators=(",", ":")).encode()


def _content_hash(rules_bytes: bytes, lexicon_bytes: bytes = b"") -> str:
    digest = hashlib.sha256(f"normalization={NORMALIZATION_VERSION}\n".encode())
    digest.update(rules_bytes)
    if lexicon_bytes:  # absent: the hash of a bundle without a lexicon is what it always was
        digest.update(b"\nlexicon=" + lexicon_bytes)
    return digest.hexdigest()


def _lexicon_json(phrases: Sequence[LexiconPhrase], version: str) -> bytes:
    data = {"version": version, "phrases": [p.to_dict() for p in phrases]}
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def _checksum(header: dict, *payload: bytes) -> str:
    digest = _digest(header)
    for part in payload:
        digest.update(part)
    return digest.hexdigest()


def _seal(header: dict, front: bytes, compiled: bytes) -> None:
    """Set the header's ``compiled_sha256`` and ``checksum``: the checksum covers the header
    (and so the compiled part's hash) and the readable part, so a load that does not need the
    compiled part (an equal or derived matcher, see :func:`read_bundle`) need not read it."""
    header["compiled_sha256"] = hashlib.sha256(compiled).hexdigest()
    header["checksum"] = _checksum(header, front)


def _digest(header: dict):
    # SHA-256 is the cheapest adequate digest here: with SHA extensions it is the
    # fastest of hashlib's (about 1.8 GB/s against 0.8 for SHA-512 and 0.7 for
    # BLAKE2b on a 58 MB bundle), and a signature over it must rest on a
    # collision-resistant hash, which rules out CRC32 and the like.
    fields = {k: v for k, v in header.items() if k not in _UNCHECKED}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode())


def encode_bundle(rules: Sequence[Rule | CompiledRule], number: int, lexicon=None,
                  serving: ServingSettings | None = None, signing_key=None) -> tuple[bytes, dict]:
    """Serialise rules (and the :class:`~rulelife.rules.lexicon.Lexicon`, if any) as
    bundle ``number``; return the file bytes and header. A lexicon without
    phrases is no lexicon; ``serving`` settings go in the header; with an
    Ed25519 ``signing_key`` the header carries its signature of the checksum
    (see :mod:`rulelife.serving.signing`)."""
    compiled = [r if isinstance(r, CompiledRule) else compile_rule(r) for r in rules]
    phrases = compile_lexicon(lexicon)
    matcher = Matcher(compiled, lexicon=phrases)
    rules_bytes = _rules_json(compiled)
    lexicon_bytes = _lexicon_json(phrases, lexicon.version) if phrases else b""
    # The compiled state (what the hot path reads: per-rule columns, key
    # table, automaton) is shipped beside the readable rules so a load rebuilds
    # nothing: a pickle of flat lists, then each automaton's raw node data (see
    # _split_automaton); the shadow matcher's state follows the serving one's.
    shadow = matcher.shadow_matcher
    states, chunks = zip(*(_split_automaton(m.state()) if m is not None else (None, []) for m in (matcher, shadow)))
    state_bytes = _dump_state(states)
    compiled_bytes = state_bytes + b"".join(chunk for part in chunks for chunk in part)
    payload = rules_bytes + lexicon_bytes + compiled_bytes
    header = {
        "number": number,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rulelife_version": __version__,
        "normalization_version": NORMALIZATION_VERSION,
        "content_hash": _content_hash(rules_bytes, lexicon_bytes),
        "rule_count": len(compiled),
        "pattern_count": matcher.pattern_count,
        "rules_bytes": len(rules_bytes),
        "compiled_bytes": len(compiled_bytes),
        "state_bytes": len(state_bytes),
        "automaton_chunks": [[len(chunk) for chunk in part] for part in chunks],
        "automaton_format": _AUTOMATON_FORMAT,
    }
    if shadow is not None:
        header["shadow_rule_count"] = len(shadow.rules)
    if serving is not None:
        header["serving"] = serving.to_header()
    if phrases:
        header |= {"lexicon_bytes": len(lexicon_bytes), "lexicon_version": lexicon.version,
                   "lexicon_phrase_count": len(phrases)}
    if signing_key is not None:
        header["signing_key"] = signing.fingerprint(signing_key.public_key())
    _seal(header, rules_bytes + lexicon_bytes, compiled_bytes)
    if signing_key is not None:
        header["signature"] = signing.sign_checksum(signing_key, header["checksum"])
    magic = MAGIC_LEXICON if phrases else MAGIC if shadow is None else MAGIC_SHADOW
    data = magic + json.dumps(header, sort_keys=True).encode() + b"\n" + payload
    return data, header


# Header field -> the type it must have. The checksum covers the header, but
# whoever can write the folder can recompute it, so a field of the wrong type
# is refused here rather than failing as a TypeError deep in the load.
_HEADER_TYPES: dict[str, type | tuple[type, ...]] = {
    "number": int, "created_at": str, "rulelife_version": str, "normalization_version": int,
    "content_hash": str, "checksum": str, "rules_bytes": int, "compiled_bytes": int, "pattern_count": int,
}
_OPTIONAL_HEADER_TYPES: dict[str, type | tuple[type, ...]] = {
    "lexicon_bytes": int, "lexicon_version": str, "automaton_format": str, "serving": dict,
    "signature": str, "signing_key": str, "state_bytes": int, "automaton_chunks": list, "compiled_sha256": str,
}


def _header_problem(header) -> str | None:
    """What is wrong with a parsed header's shape, or None."""
    if not isinstance(header, dict):
        return f"a JSON object is expected, not {type(header).__name__}"
    for name, kind in (*_HEADER_TYPES.items(), *_OPTIONAL_HEADER_TYPES.items()):
        if name not in header:
            if name in _HEADER_TYPES:
                return f"field {name!r} is missing"
            continue
        value = header[name]
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"field {name!r} should be {kind.__name__}, not {type(value).__name__}"
        if kind is int and value < 0:
            return f"field {name!r} is negative"
    if "automaton_chunks" in header:
        parts = header["automaton_chunks"]
        if len(parts) != 2 or not all(isinstance(part, list) and all(type(n) is int and n >= 0 for n in part)
                                      for part in parts):
            return "field 'automaton_chunks' should be two lists of sizes"
        if header.get("state_bytes", 0) + sum(map(sum, parts)) != header["compiled_bytes"]:
            return "its compiled sizes do not add up"
    if "serving" in header:
        try:
            ServingSettings.from_header(header["serving"])
        except ValueError as exc:
            return f"field 'serving': {exc}"
    return None


def read_bundle(path: Path, *, expected_checksum: str | None = None, public_key=None,
                reuse: Bundle | None = None, derive: bool = False) -> Bundle:
    """Read, verify and load a bundle file.

    Raises :class:`BundleIntegrityError` if it is truncated, modified, not the
    one ``expected_checksum`` names, not signed by ``public_key`` (an Ed25519
    public key, PEM bytes or a path; see :mod:`rulelife.serving.signing`) when one is given, if
    its content hash is not the hash of its rules and lexicon, or if its
    compiled state is anything but what rulelife writes.

    ``reuse``: a loaded bundle whose matcher the new one takes over when their
    contents are equal (a republish that changed nothing but the number), so
    nothing is decoded. Equal means the content hash recomputed from this
    file's verified rules and lexicon, never the header's word for it.

    ``derive``: when the contents differ by a few rules, serve a matcher
    derived from ``reuse``'s lineage instead of loading this bundle's whole
    (see :mod:`rulelife.serving.lineage`; pyahocorasick only, for serving:
    the same answers, and the new bundle's automaton is never restored).
    """
    path = Path(path)
    if public_key is not None:
        public_key = signing.load_public_key(public_key)
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise BundleError(f"cannot read bundle {path}: {exc.strerror}") from None
    with handle:
        return _read(handle, path, expected_checksum, public_key, reuse, derive)


def _read(handle, path: Path, expected_checksum: str | None, public_key, reuse: Bundle | None,
          derive: bool) -> Bundle:
    header, front, compiled = _verified(handle, path, expected_checksum, public_key)
    rules_size = header["rules_bytes"]
    # The checksum covers the header, but whoever can write the folder can recompute it:
    # the content hash is checked against the content, since equal hashes share a matcher.
    rules_bytes, lexicon_bytes = front[:rules_size], front[rules_size:]
    del front
    if _content_hash(rules_bytes, lexicon_bytes) != header["content_hash"]:
        raise BundleIntegrityError(f"{path} claims a content hash its rules and lexicon do not have: it was "
                                   "tampered with; publish a good one with `rulelife bundle publish`")
    if reuse is not None and reuse.content_hash == header["content_hash"]:
        return _bundle(header, reuse.matcher, path, reuse.lineage)
    lineage = reuse.lineage if reuse is not None else None
    if lineage is not None and lineage.content_hash == header["content_hash"]:
        return _bundle(header, lineage.matcher, path, lineage)  # back to the bundle the served one derives from
    # Deriving or decoding makes many small objects that all live as long as the
    # bundle; pausing the collector meanwhile saves it scanning them again and again.
    with _collector_paused():
        if derive and lineage is not None:
            derived = lineage.derive(rules_bytes, lexicon_bytes, header)
            if derived is not None:
                return _bundle(header, derived, path, lineage)
        if compiled is None:
            compiled = _read_compiled(handle, path, header)
        lexicon = ()
        if lexicon_bytes:
            phrases = json.loads(lexicon_bytes)["phrases"]
            lexicon = tuple(LexiconPhrase.from_dict(item) for item in phrases)
        rules = _RulesJson(rules_bytes)  # decoded when first asked for (explain, Bundle.rules)
        if header.get("automaton_format") in (_AUTOMATON_FORMAT, _UNSLICED_FORMAT):
            matcher = _load_compiled(path, compiled, header, rules, lexicon)
        else:  # another pyahocorasick or an older layout: rebuild from the rules, which the checksum vouches for
            matcher = Matcher(rules.all(), lexicon=lexicon)
        del compiled  # 50 MB at 100K patterns: kept only inside the automata
    return _bundle(header, matcher, path, Lineage(matcher, header["content_hash"], rules_bytes, lexicon_bytes))


@contextmanager
def _collector_paused() -> Iterator[None]:
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _bundle(header: dict, matcher: Matcher, path: Path, lineage: Lineage | None = None) -> Bundle:
    return Bundle(
        number=int(header["number"]),
        created_at=header["created_at"],
        rulelife_version=header["rulelife_version"],
        normalization_version=header["normalization_version"],
        content_hash=header["content_hash"],
        checksum=header["checksum"],
        matcher=matcher,
        path=path,
        lexicon_version=header.get("lexicon_version"),
        serving=ServingSettings.from_header(header["serving"]) if "serving" in header else None,
        signing_key=header.get("signing_key") if "signature" in header else None,
        lineage=lineage,
    )


_FIX = "re-publish it with `rulelife bundle publish` or roll back with `rulelife bundle rollback`"


def _verified(handle, path: Path, expected_checksum: str | None, public_key) -> tuple[dict, bytes, list[bytes] | None]:
    """The header, the readable part (rules and lexicon JSON) and the parts of the
    compiled state of the bundle file open in ``handle``, once every check passed.

    The compiled parts are None when the header carries their hash
    (``compiled_sha256``, covered by the checksum): :func:`_read_compiled`
    reads and checks them when a load needs them. A bundle written before
    carries one checksum over everything, so it is read whole here.
    """
    try:
        if handle.readline(len(MAGIC)) not in _MAGICS:
            raise BundleIntegrityError(f"{path} is not a rulelife bundle (bad magic line); {_FIX}")
        try:
            header = json.loads(handle.readline(_MAX_HEADER))
        except ValueError:
            raise BundleIntegrityError(f"{path} has a damaged header; {_FIX}") from None
        problem = _header_problem(header)
        if problem:
            raise BundleIntegrityError(f"{path} has a damaged header ({problem}); {_FIX}")
        total = header["rules_bytes"] + header.get("lexicon_bytes", 0) + header["compiled_bytes"]
        size = os.fstat(handle.fileno()).st_size - handle.tell()
        if size != total:
            raise BundleIntegrityError(f"{path} is truncated ({size} of {total} payload bytes); {_FIX}")
        # One read per part, each its own bytes object: the unpickler and the
        # automaton read them in place, with no copy of 50 MB at 100K patterns.
        sizes = [total - header["compiled_bytes"]]
    except OSError as exc:
        raise BundleError(f"cannot read bundle {path}: {exc.strerror}") from None
    sealed = "compiled_sha256" in header
    if not sealed:
        sizes += _compiled_sizes(header)
    digest = _digest(header)
    parts = _read_parts(handle, path, sizes, digest)
    if digest.hexdigest() != header["checksum"]:
        raise BundleIntegrityError(f"{path} fails its checksum: it was modified after it was written; {_FIX}")
    if expected_checksum is not None and expected_checksum != header["checksum"]:
        raise BundleIntegrityError(f"{path} is not the bundle CURRENT points to (checksum differs); {_FIX}")
    if public_key is not None:  # before anything in the payload is decoded
        signing.verify_checksum(public_key, header, path)
    if header["normalization_version"] != NORMALIZATION_VERSION:
        raise BundleError(
            f"{path} was compiled with normalisation v{header['normalization_version']}, this rulelife "
            f"uses v{NORMALIZATION_VERSION}; rebuild it with `rulelife bundle publish`"
        )
    return header, parts[0], None if sealed else parts[1:]


def _read_parts(handle, path: Path, sizes: list[int], digest) -> list[bytes]:
    """:func:`_read_hashed`, its errors said as a bundle's."""
    try:
        parts = _read_hashed(handle, sizes, digest)
    except OSError as exc:
        raise BundleError(f"cannot read bundle {path}: {exc.strerror}") from None
    if sum(map(len, parts)) != sum(sizes):
        raise BundleIntegrityError(f"{path} changed while it was read; {_FIX}")
    return parts


def _compiled_sizes(header: dict) -> list[int]:
    if "automaton_chunks" in header:
        return [header.get("state_bytes", 0), *(n for part in header["automaton_chunks"] for n in part)]
    return [header["compiled_bytes"]]


def _read_compiled(handle, path: Path, header: dict) -> list[bytes]:
    """The compiled parts of a verified bundle whose header carries their hash, checked against it."""
    digest = hashlib.sha256()
    parts = _read_parts(handle, path, _compiled_sizes(header), digest)
    if digest.hexdigest() != header["compiled_sha256"]:
        raise BundleIntegrityError(f"{path} fails its checksum: its compiled part was modified after it was "
                                   f"written; {_FIX}")
    return parts


_OVERLAP_FROM = 4 << 20  # bytes: below this, a hashing thread costs more than it saves


def _read_hashed(handle, sizes: list[int], digest) -> list[bytes]:
    """Read consecutive parts of ``sizes`` bytes from ``handle``, each fed to ``digest``.

    A large bundle is hashed in a second thread while the next part is read:
    both release the interpreter lock, so on two cores the SHA-256 pass (about
    35 ms at 100K patterns) mostly hides behind the reading, and request
    threads keep running meanwhile.
    """
    if sum(sizes) < _OVERLAP_FROM:
        parts = [handle.read(size) for size in sizes]
        for part in parts:
            digest.update(part)
        return parts
    queue: SimpleQueue[bytes | None] = SimpleQueue()

    def hash_parts() -> None:
        while (part := queue.get()) is not None:
            digest.update(part)

    worker = threading.Thread(target=hash_parts, name="rulelife-bundle-hash", daemon=True)
    worker.start()
    parts = []
    try:
        for size in sizes:
            parts.append(handle.read(size))
            queue.put(parts[-1])
    finally:
        queue.put(None)
        worker.join()
    return parts


def _load_compiled(path: Path, compiled: list[bytes], header: dict, rules: _RulesJson,
                   lexicon: tuple[LexiconPhrase, ...]) -> Matcher:
    """The matcher of a compiled state rulelife wrote; anything else is a loud
    :class:`BundleIntegrityError` (its checksum is valid, so someone able to
    recompute it made it), never something to rebuild around quietly."""
    try:
        if "automaton_chunks" not in header:
            raise ValueError("the header does not say how its automata are laid out")
        state_data, *chunks = compiled
        states = _load_state(state_data)
        if not isinstance(states, tuple) or len(states) != 2:
            raise ValueError("not a pair of matcher states")
        count = len(header["automaton_chunks"][0])
        shadow = None
        if states[1] is not None:
            shadow = Matcher.from_state(_join_automaton(states[1], chunks[count:]), rules.shadow, lexicon=lexicon)
        matcher = Matcher.from_state(_join_automaton(states[0], chunks[:count]), rules.serving, lexicon=lexicon,
                                     shadow=shadow)
        if matcher.pattern_count != header["pattern_count"] or \
                (shadow is not None) != ("shadow_rule_count" in header):
            raise ValueError("its size differs from the header's")
        return matcher
    except _ForeignGlobal as exc:
        problem = f"names the global {exc}, which rulelife never writes there (it was not run)"
    except (pickle.UnpicklingError, ValueError, TypeError, EOFError, AttributeError, IndexError) as exc:
        problem = f"is not a state rulelife wrote ({type(exc).__name__}: {exc})"
    message = (f"{path} has a valid checksum but its compiled state {problem}: the bundle was tampered with; "
               "publish a good one with `rulelife bundle publish`, and keep the bundle folder writable by the "
               "publisher alone (or sign bundles: `rulelife bundle keygen`)")
    log.error("refusing bundle %s: %s", path, message)
    raise BundleIntegrityError(message)


def _dump_state(states: tuple) -> bytes:
    """The pair of matcher states as a stream of pickles, so a load can unpickle it in slices.

    First the pair with every list longer than :data:`_SLICE` items left
    empty; then, if any was, the plan ``[[state, field, slices], ...]`` and
    each such list's slices, ``_SLICE`` items a pickle. Unpickling is one C
    call holding the interpreter lock: a 100K-pattern state in one pickle
    stalls every request thread for 25-35 ms, a slice for about one. A small
    state is the one pickle it always was.
    """
    skeleton, plan, slices = [], [], []
    for i, state in enumerate(states):
        if state is None:
            skeleton.append(None)
            continue
        fields = list(state)
        for j, value in enumerate(fields):
            if isinstance(value, list) and len(value) > _SLICE:
                parts = [value[k: k + _SLICE] for k in range(0, len(value), _SLICE)]
                plan.append([i, j, len(parts)])
                slices.extend(parts)
                fields[j] = []
        skeleton.append(tuple(fields))
    # One pickler for the whole stream, as one unpickler reads it: its memo carries over from
    # pickle to pickle, so a value repeated across slices is stored once and read as one object.
    out = io.BytesIO()
    pickler = pickle.Pickler(out, protocol=5)
    pickler.dump(tuple(skeleton))
    if plan:
        pickler.dump(plan)
        for part in slices:
            pickler.dump(part)
    return out.getvalue()


def _load_state(data: bytes) -> tuple:
    """Inverse of :func:`_dump_state`, letting request threads run between slices.

    ValueError (or an unpickling error) for a stream it never writes.
    """
    stream = io.BytesIO(data)
    reader = _CompiledOnly(stream)
    states = reader.load()
    if stream.tell() == len(data):
        return states
    plan = reader.load()
    if not isinstance(states, tuple) or not isinstance(plan, list):
        raise TypeError("not a sliced pair of matcher states")
    states = [list(state) if isinstance(state, tuple) else state for state in states]
    for step in plan:
        if not (isinstance(step, list) and len(step) == 3 and all(type(n) is int and n >= 0 for n in step)
                and step[0] < len(states) and isinstance(states[step[0]], list)
                and step[1] < len(states[step[0]]) and states[step[0]][step[1]] == []):
            raise ValueError("a slice plan that names no emptied list")
        i, j, count = step
        whole: list = []
        for _ in range(count):
            part = reader.load()
            if type(part) is not list:
                raise ValueError("a slice that is not a list")
            whole += part
            time.sleep(0)  # the lock goes to a waiting request thread now, not at the switch interval
        states[i][j] = whole
    if stream.tell() != len(data):
        raise ValueError("bytes after the last slice")
    return tuple(tuple(state) if isinstance(state, list) else state for state in states)


def _split_automaton(state: tuple) -> tuple[tuple, list[bytes]]:
    """A :meth:`Matcher.state` with its automaton replaced by the automaton's
    arguments but its node data, and that data (a few 16 MB chunks).

    The pieces are what pickling the automaton would hold (its ``__reduce__``),
    but the node data travels as raw bytes beside the pickle: a load reads
    each chunk straight into the bytes object the automaton is built from, and
    the pickle names no global at all.
    """
    automaton = state[-1]
    if not len(automaton):  # never made (no phrase): nothing to ship
        return (*state[:-1], ()), []
    kind, args = automaton.__reduce__()
    if kind is not ahocorasick.Automaton:
        raise BundleError(f"pyahocorasick {package_version('pyahocorasick')} pickles its automaton as {kind!r}; "
                          "this rulelife does not know that layout")
    return (*state[:-1], tuple(args[1:])), list(args[0])


def _join_automaton(state, chunks: list[bytes]) -> tuple:
    """Inverse of :func:`_split_automaton`; ValueError for arguments it never makes."""
    if not isinstance(state, tuple) or not state or not isinstance(state[-1], tuple):
        raise ValueError("not a matcher state")
    args = state[-1]
    if not chunks:
        if args:
            raise ValueError("automaton arguments without node data")
        return (*state[:-1], ahocorasick.Automaton(ahocorasick.STORE_INTS))
    if len(args) != 6 or not all(type(n) is int for n in args[:5]) or args[5] is not None:
        raise ValueError("automaton arguments of another shape")
    return (*state[:-1], ahocorasick.Automaton(chunks, *args))


class _RulesJson:
    """A bundle's readable rules, decoded once, when first asked for."""

    def __init__(self, data: bytes):
        self._data = data
        self._rules: tuple[CompiledRule, ...] | None = None

    def all(self) -> tuple[CompiledRule, ...]:
        if self._rules is None:
            self._rules = tuple(CompiledRule.from_dict(item) for item in json.loads(self._data))
            self._data = b""
        return self._rules

    def serving(self) -> list[CompiledRule]:
        return sorted((rule for rule in self.all() if not rule.shadow), key=lambda r: r.id)

    def shadow(self) -> list[CompiledRule]:
        return sorted((rule._replace(shadow=False) for rule in self.all() if rule.shadow), key=lambda r: r.id)


@dataclass(frozen=True)
class BundleDiff:
    """Rules added, removed and changed (same id, other version) from a to b."""

    a: int
    b: int
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[tuple[str, str, str], ...]  # (rule id, version in a, version in b)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def to_dict(self) -> dict:
        return {
            "a": self.a,
            "b": self.b,
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": [{"rule_id": r, "from": x, "to": y} for r, x, y in self.changed],
        }


def diff_bundles(a: Bundle, b: Bundle) -> BundleDiff:
    old = {r.id: r.version for r in a.rules}
    new = {r.id: r.version for r in b.rules}
    return BundleDiff(
        a=a.number,
        b=b.number,
        added=tuple(sorted(new.keys() - old.keys())),
        removed=tuple(sorted(old.keys() - new.keys())),
        changed=tuple((r, old[r], new[r]) for r in sorted(old.keys() & new.keys()) if old[r] != new[r]),
    )


@dataclass(frozen=True)
class Pin:
    """A bundle publishing must leave in place (a rollback's), until someone unpins it.

    ``forced`` names the rules the rollback served although the registry had
    taken them out of traffic, each with the state it was in then.
    """

    number: int
    actor: str
    reason: str
    at: str
    forced: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"number": self.number, "actor": self.actor, "reason": self.reason, "at": self.at,
                "forced": dict(self.forced)}


@dataclass(frozen=True)
class PublishResult:
    bundle: Bundle
    built: bool  # a new bundle file was written
    published: bool  # CURRENT moved
    repaired: str | None = None  # what was wrong with the damaged CURRENT this publish replaced
    pin: Pin | None = None  # the pin that held CURRENT (the registry's rules were not published)
    narrowed: tuple[str, ...] = ()  # rules taken out of the pinned bundle because the registry took them out
    waiting: dict | None = None  # what the registry would change in the pinned bundle: added, removed, changed


# Roots whose bundle lock this thread holds: a publish that already holds it
# (to read the registry under it) builds and points without locking again.
_held = threading.local()


class BundleStore:
    """A folder of numbered bundles, a ``CURRENT`` pointer and a publish history.

    ``signing_key`` (an Ed25519 private key, or the path of its PEM file, read
    when a bundle is built; see :mod:`rulelife.serving.signing`) signs every
    bundle this store builds; with ``public_key`` (a key, PEM bytes or a path)
    every bundle it loads must carry a valid signature by that key.
    """

    def __init__(self, root: Path, *, signing_key=None, public_key=None):
        self.root = Path(root)
        self._signing_key = signing_key
        self.public_key = signing.load_public_key(public_key) if public_key is not None else None

    @property
    def signing_key(self):
        """The private key builds sign with (None: unsigned), read from its file on first use."""
        if isinstance(self._signing_key, (str, Path)):
            self._signing_key = signing.load_private_key(Path(self._signing_key))
        return self._signing_key

    @classmethod
    def for_workspace(cls, workspace: Workspace) -> BundleStore:
        """The workspace's bundle folder, signing and verifying with the keys its settings name."""
        private, public = workspace.settings.bundle_signing_key, workspace.settings.bundle_public_key
        return cls(workspace.bundle_dir, signing_key=workspace.resolve(private) if private else None,
                   public_key=workspace.resolve(public) if public else None)

    @property
    def current_file(self) -> Path:
        return self.root / "CURRENT"

    @property
    def history_file(self) -> Path:
        return self.root / "history.jsonl"

    def path_of(self, number: int) -> Path:
        return self.root / f"bundle-{number:06d}.rlb"

    @property
    def pin_file(self) -> Path:
        return self.root / "PIN"

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the folder's writer lock, re-entrant in one thread: what a caller reads inside
        (the registry, before a publish) cannot change under a concurrent writer of this folder."""
        with self._locked():
            yield

    @contextmanager
    def _locked(self) -> Iterator[None]:
        key = str(self.root.resolve())
        roots = _held.__dict__.setdefault("roots", set())
        if key in roots:
            yield  # this thread holds it already: build and point inside a caller's lock
            return
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one writer at a time; readers never lock
            roots.add(key)
            try:
                # Every writer of this folder holds the lock, so any temporary file
                # here now is a killed publish's leftover.
                removed = remove_temps(self.root)
                if removed:
                    log.warning("removed %d temporary file(s) left in %s by an interrupted build or publish",
                                removed, self.root)
                yield
            finally:
                roots.discard(key)
                fcntl.flock(lock, fcntl.LOCK_UN)

    def numbers(self) -> list[int]:
        if not self.root.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.root.iterdir() if (m := _NAME.match(p.name)))

    def load(self, number: int) -> Bundle:
        path = self.path_of(number)
        if not path.exists():
            known = ", ".join(map(str, self.numbers())) or "none"
            raise BundleError(f"no bundle {number} in {self.root} (bundles: {known})")
        return read_bundle(path, public_key=self.public_key)

    def build(self, rules: Sequence[Rule | CompiledRule], lexicon=None,
              serving: ServingSettings | None = None) -> tuple[Bundle, bool]:
        """Write the next bundle for ``rules``, the safety ``lexicon`` (a
        :class:`~rulelife.rules.lexicon.Lexicon` or None) and the ``serving``
        settings; return it and whether it is new.

        Equal content and settings to the newest bundle are not written again:
        that one is returned, so nightly republishing without changes makes no
        new number, unless it no longer verifies, when a new one replaces it.
        """
        with self._locked():
            numbers = self.numbers()
            data, header = encode_bundle(rules, (numbers[-1] + 1) if numbers else 1, lexicon, serving,
                                         self.signing_key)
            if numbers:
                latest = self.peek_header(self.path_of(numbers[-1])) or {}
                # Same signer too: configuring a key makes the next publish a signed bundle.
                if all(latest.get(key) == header.get(key) for key in ("content_hash", "serving", "signing_key")):
                    try:
                        return self.load(numbers[-1]), False
                    except BundleError as exc:
                        log.warning("writing bundle %s: the newest one holds the same rules but is damaged (%s)",
                                    header["number"], exc)
            path = self.path_of(header["number"])
            atomic_write(path, data)
            return read_bundle(path, public_key=self.public_key), True

    @staticmethod
    def peek_header(path: Path) -> dict | None:
        """The header of the bundle file at ``path`` as written, unverified; None if it has none."""
        try:
            with open(path, "rb") as handle:
                if handle.readline() not in _MAGICS:
                    return None
                header = json.loads(handle.readline())
        except (OSError, ValueError):
            return None
        return header if isinstance(header, dict) else None

    def publish(self, number: int, *, actor: str = "", action: str = "publish", reason: str = "",
                extra: dict | None = None) -> Bundle:
        """Verify bundle ``number`` and point ``CURRENT`` at it atomically; ``reason`` and ``extra``
        (e.g. the rules a forced rollback served) go in its history line."""
        with self._locked():
            bundle = self.load(number)
            try:
                before = self.pointer()
            except BundleIntegrityError:
                before = None
            pointer = {"number": bundle.number, "file": bundle.path.name, "checksum": bundle.checksum}
            atomic_write(self.current_file, json.dumps(pointer).encode() + b"\n")
            self._append_history(action, number, actor, reason, previous=before["number"] if before else None,
                                 checksum=bundle.checksum, **(extra or {}))
            return bundle

    def _append_history(self, action: str, number: int, actor: str, reason: str, **fields) -> None:
        entry = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "action": action, "number": number,
                 "actor": actor, "reason": reason, **fields}
        cut = False  # a line a killed writer left without its end stays a line of its own
        try:
            with open(self.history_file, "rb") as tail:
                if tail.seek(0, os.SEEK_END) > 0:
                    tail.seek(-1, os.SEEK_END)
                    cut = tail.read(1) != b"\n"
        except FileNotFoundError:
            pass
        with open(self.history_file, "a", encoding="utf-8") as handle:
            handle.write(("\n" if cut else "") + json.dumps(entry, sort_keys=True) + "\n")

    def _last_move(self) -> dict | None:
        """The newest history line that moved CURRENT (a publish or a rollback), or None."""
        for entry in reversed(self.history()):
            if entry.get("action") in ("publish", "rollback"):
                return entry
        return None

    def build_and_point(self, rules: Sequence[Rule | CompiledRule], *, actor: str = "", lexicon=None,
                        serving: ServingSettings | None = None, reason: str = "",
                        extra: dict | None = None) -> PublishResult:
        """:meth:`build` then point CURRENT at the bundle unless it already does.

        A damaged CURRENT is replaced, not a reason to fail: publishing is the
        repair an operator reaches for. The result says what was replaced.
        """
        bundle, built = self.build(rules, lexicon, serving)
        try:
            pointer = self.pointer()
            repaired = None
        except BundleIntegrityError as exc:
            pointer, repaired = None, str(exc)
            log.warning("replacing the damaged CURRENT with a pointer to bundle %s: %s", bundle.number, exc)
        if pointer is not None and pointer["number"] == bundle.number:
            with self._locked():
                last = self._last_move()
                if last is not None and last.get("number") == bundle.number:
                    return PublishResult(bundle, built, False)
                # CURRENT moved but its history line was never written (a publish killed between the
                # two): write it now, so the move is in the history and becomes an event, once.
                self._append_history("publish", bundle.number, actor, reason,
                                     previous=last.get("number") if last else None, checksum=bundle.checksum,
                                     **(extra or {}))
            return PublishResult(bundle, built, True, repaired)
        return PublishResult(self.publish(bundle.number, actor=actor, reason=reason, extra=extra), built, True,
                             repaired)

    def pointer(self) -> dict | None:
        """The parsed CURRENT pointer, or None before the first publish.

        Raises :class:`BundleIntegrityError` when CURRENT is damaged (not
        UTF-8 JSON of the expected shape, or naming a file that is no bundle
        of this folder) and :class:`BundleError` when it cannot be read.
        """
        try:
            raw = self.current_file.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise BundleError(f"cannot read {self.current_file}: {exc.strerror}") from None
        try:
            pointer = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise self._damaged("it is not UTF-8 text") from None
        except ValueError:
            raise self._damaged("it is not JSON") from None
        if not isinstance(pointer, dict) or not {"number", "file", "checksum"} <= pointer.keys():
            raise self._damaged("it does not name a bundle's number, file and checksum")
        pointer = {key: pointer[key] for key in ("number", "file", "checksum")}
        name = _NAME.match(pointer["file"]) if isinstance(pointer["file"], str) else None
        # The file must be a bundle of this folder with the number CURRENT names:
        # a path elsewhere ("../x") is never read.
        if name is None or type(pointer["number"]) is not int or int(name.group(1)) != pointer["number"]:
            raise self._damaged(f"its file {pointer['file']!r} is not bundle {pointer['number']!r} of this folder")
        if not isinstance(pointer["checksum"], str):
            raise self._damaged("its checksum is not a string")
        return pointer

    def _damaged(self, why: str) -> BundleIntegrityError:
        return BundleIntegrityError(f"{self.current_file} is damaged ({why}); "
                                    "point it at a good bundle with `rulelife bundle rollback N`")

    def fallback(self, *, skip: int | None = None) -> Bundle:
        """The most recently published bundle that verifies (bundle ``skip`` aside), for a damaged CURRENT.

        Candidates come in publish-history order, newest first, so a bundle
        rolled back from is not served again; then, if the history is missing
        or unreadable, every bundle by number, newest first.
        """
        try:
            published = [entry["number"] for entry in reversed(self.history())]
        except (OSError, ValueError, KeyError, TypeError):
            published = []
        order = published if published else sorted(self.numbers(), reverse=True)
        problems = []
        for number in dict.fromkeys(order):
            if number == skip or not isinstance(number, int):
                continue
            try:
                return self.load(number)
            except BundleError as exc:
                problems.append(str(exc))
        raise BundleError(f"no {'other ' if skip is not None else ''}published bundle in {self.root} verifies "
                          f"({'; '.join(problems) or 'there is none'}); publish one with `rulelife bundle publish`")

    def current(self) -> Bundle:
        """Load and verify the bundle CURRENT points to."""
        pointer = self.pointer()
        if pointer is None:
            raise BundleError(
                f"no bundle has been published in {self.root}; run `rulelife bundle publish` first"
            )
        return self.pointed(pointer)

    def pointed(self, pointer: dict, *, reuse: Bundle | None = None, derive: bool = False) -> Bundle:
        """Load and verify the bundle ``pointer`` (as :meth:`pointer` returns it) names
        (``reuse`` and ``derive`` as :func:`read_bundle`'s)."""
        return read_bundle(self.root / pointer["file"], expected_checksum=pointer["checksum"],
                           public_key=self.public_key, reuse=reuse, derive=derive)

    def history(self) -> list[dict]:
        if not self.history_file.exists():
            return []
        entries = []
        for line in self.history_file.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                entry = json.loads(line) if line.strip() else None
            except ValueError:  # a line a killed writer cut short
                continue
            if isinstance(entry, dict):
                entries.append(entry)
        return entries

    def rollback_target(self, number: int | None = None) -> int:
        """``number``, or the bundle published before the current one."""
        if number is not None:
            return number
        pointer = self.pointer()
        current = pointer["number"] if pointer else None
        # Walk back along publishes (not rollbacks), so repeated rollbacks
        # keep going back: published 1, 2, 3 → rollback to 2 → rollback to 1.
        published = [e["number"] for e in self.history() if e.get("action") == "publish"]
        position = max((i for i, n in enumerate(published) if n == current), default=len(published))
        earlier = [n for n in published[:position] if n != current]
        if not earlier:
            raise BundleError("nothing to roll back to: no bundle was published before the current one")
        return earlier[-1]

    def rollback(self, number: int | None = None, *, actor: str = "", reason: str = "",
                 extra: dict | None = None) -> Bundle:
        """Point CURRENT at bundle ``number``, or at the one published before the current one.

        This is the bare pointer move; :func:`rulelife.serving.publish.rollback` is the one that checks
        the registry and pins the bundle.
        """
        with self._locked():
            return self.publish(self.rollback_target(number), actor=actor, action="rollback", reason=reason,
                                extra=extra)

    def pinned(self) -> Pin | None:
        """The pin, or None. Raises :class:`BundleIntegrityError` when ``PIN`` is not one this folder wrote."""
        try:
            data = json.loads(self.pin_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise BundleIntegrityError(f"{self.pin_file} is damaged ({exc}); lift it with `rulelife bundle unpin`"
                                       ) from None
        try:
            forced = {str(k): str(v) for k, v in (data.get("forced") or {}).items()}
            pin = Pin(number=data["number"], actor=str(data["actor"]), reason=str(data["reason"]),
                      at=str(data["at"]), forced=forced)
        except (KeyError, TypeError, AttributeError):
            pin = None
        if pin is None or type(pin.number) is not int:
            raise BundleIntegrityError(f"{self.pin_file} is damaged (it does not name a bundle, who and why); "
                                       "lift it with `rulelife bundle unpin`")
        return pin

    def pin(self, number: int, *, actor: str, reason: str, forced: dict[str, str] | None = None) -> Pin:
        """Pin bundle ``number``: publishing leaves CURRENT alone until :meth:`unpin`."""
        with self._locked():
            pin = Pin(number, actor, reason, datetime.now(UTC).isoformat(timespec="seconds"), dict(forced or {}))
            atomic_write(self.pin_file, json.dumps(pin.to_dict(), sort_keys=True).encode() + b"\n")
            return pin

    def unpin(self, *, actor: str, reason: str = "") -> Pin | None:
        """Lift the pin (a damaged one too) and say so in the history; return the pin lifted, None if none."""
        with self._locked():
            try:
                pin = self.pinned()
            except BundleIntegrityError as exc:
                pin = Pin(-1, "", str(exc), "")  # lifted all the same: a damaged pin must not block publishing
            if pin is None:
                return None
            self.pin_file.unlink()
            self._append_history("unpin", pin.number if pin.number >= 0 else None, actor, reason,
                                 pinned_by=pin.actor, pin_reason=pin.reason)
            return pin
