"""Bundles: immutable, versioned, checksummed artifacts of the active rules
(and of the shadow rules, flagged, which the runtime matches but never serves).

A bundle file ``bundle-000042.rlb`` is::

    RULELIFE-BUNDLE 1\\n
    <header JSON>\\n
    <rules JSON><compiled automaton>

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
normalisation versions, the content hash (rules and normalisation version
only, so equal content has an equal hash whatever its number) and a checksum
over everything else, so a truncated or edited file is refused. The compiled
automaton is shipped so that loading skips the build; it is unpickled with an
allow-list of one class, and rebuilt from the rules when the installed
pyahocorasick cannot read it.

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
import gc
import hashlib
import io
import json
import logging
import pickle
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import ahocorasick

from rulelife._files import atomic_write, remove_temps
from rulelife._version import __version__
from rulelife.errors import BundleError, BundleIntegrityError
from rulelife.rules.matcher import CompiledRule, LexiconPhrase, Matcher, compile_lexicon, compile_rule
from rulelife.rules.normalize import NORMALIZATION_VERSION

if TYPE_CHECKING:  # the pydantic models are for annotations only: serving never loads them
    from rulelife.config import Settings
    from rulelife.rules.definition import Rule

__all__ = ["Bundle", "BundleDiff", "BundleStore", "Pin", "PublishResult", "ServingSettings", "diff_bundles",
           "read_bundle"]

MAGIC = b"RULELIFE-BUNDLE 1\n"
MAGIC_SHADOW = b"RULELIFE-BUNDLE 2\n"  # the same layout, with shadow rules (see the module docstring)
MAGIC_LEXICON = b"RULELIFE-BUNDLE 3\n"  # with a safety lexicon section (see the module docstring)
_MAGICS = (MAGIC, MAGIC_SHADOW, MAGIC_LEXICON)
_NAME = re.compile(r"^bundle-(\d{6,})\.rlb$")
_AUTOMATON_FORMAT = f"pyahocorasick-{package_version('pyahocorasick')}-pickle5"

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
    rules: tuple[CompiledRule, ...]
    matcher: Matcher
    path: Path | None = None
    lexicon_version: str | None = None  # None: the bundle holds no safety lexicon
    serving: ServingSettings | None = None  # None: built without workspace settings (the runtime's defaults)

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
            "path": str(self.path) if self.path else None,
        }


class _CompiledOnly(pickle.Unpickler):
    """Unpickle the compiled matcher state and nothing else: plain containers,
    :class:`CompiledRule` and one Automaton. Any other class is refused, so a
    bundle cannot run code when it is loaded."""

    _ALLOWED = {("ahocorasick", "Automaton"): ahocorasick.Automaton,
                ("rulelife.rules.matcher", "CompiledRule"): CompiledRule}

    def find_class(self, module: str, name: str):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"a bundle may not reference {module}.{name}") from None


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


def _checksum(header: dict, payload: bytes) -> str:
    fields = {k: v for k, v in header.items() if k != "checksum"}
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode())
    digest.update(payload)
    return digest.hexdigest()


def encode_bundle(rules: Sequence[Rule | CompiledRule], number: int, lexicon=None,
                  serving: ServingSettings | None = None) -> tuple[bytes, dict]:
    """Serialise rules (and the :class:`~rulelife.rules.lexicon.Lexicon`, if any) as
    bundle ``number``; return the file bytes and header. A lexicon without
    phrases is no lexicon; ``serving`` settings go in the header."""
    compiled = [r if isinstance(r, CompiledRule) else compile_rule(r) for r in rules]
    phrases = compile_lexicon(lexicon)
    matcher = Matcher(compiled, lexicon=phrases)
    rules_bytes = _rules_json(compiled)
    lexicon_bytes = _lexicon_json(phrases, lexicon.version) if phrases else b""
    # The compiled state (rules, key table, automaton) is shipped beside the
    # readable rules so a load is one C-speed unpickle instead of a rebuild;
    # the shadow matcher's state follows the serving one's when there is one.
    state: tuple = (matcher.rules, *matcher.key_table, matcher.automaton)
    shadow = matcher.shadow_matcher
    if shadow is not None:
        state += (shadow.rules, *shadow.key_table, shadow.automaton)
    compiled_bytes = pickle.dumps(state, protocol=5)
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
        "automaton_format": _AUTOMATON_FORMAT,
    }
    if shadow is not None:
        header["shadow_rule_count"] = len(shadow.rules)
    if serving is not None:
        header["serving"] = serving.to_header()
    if phrases:
        header |= {"lexicon_bytes": len(lexicon_bytes), "lexicon_version": lexicon.version,
                   "lexicon_phrase_count": len(phrases)}
    header["checksum"] = _checksum(header, payload)
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
    if "serving" in header:
        try:
            ServingSettings.from_header(header["serving"])
        except ValueError as exc:
            return f"field 'serving': {exc}"
    return None


def read_bundle(path: Path, *, expected_checksum: str | None = None) -> Bundle:
    """Read, verify and compile a bundle file; raise :class:`BundleIntegrityError`
    if it is truncated, modified, or not the one ``expected_checksum`` names."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read bundle {path}: {exc.strerror}") from None
    fix = "re-publish it with `rulelife bundle publish` or roll back with `rulelife bundle rollback`"
    if not data.startswith(_MAGICS):
        raise BundleIntegrityError(f"{path} is not a rulelife bundle (bad magic line); {fix}")
    end = data.find(b"\n", len(MAGIC))
    try:
        header = json.loads(data[len(MAGIC) : end])
    except ValueError:
        raise BundleIntegrityError(f"{path} has a damaged header; {fix}") from None
    problem = _header_problem(header)
    if problem:
        raise BundleIntegrityError(f"{path} has a damaged header ({problem}); {fix}")
    payload = memoryview(data)[end + 1 :]
    sizes = (header["rules_bytes"], header.get("lexicon_bytes", 0), header["compiled_bytes"])
    declared = header["checksum"]
    if len(payload) != sum(sizes):
        raise BundleIntegrityError(f"{path} is truncated ({len(payload)} of {sum(sizes)} payload bytes); {fix}")
    if _checksum(header, payload) != declared:
        raise BundleIntegrityError(f"{path} fails its checksum: it was modified after it was written; {fix}")
    if expected_checksum is not None and expected_checksum != declared:
        raise BundleIntegrityError(f"{path} is not the bundle CURRENT points to (checksum differs); {fix}")
    if header["normalization_version"] != NORMALIZATION_VERSION:
        raise BundleError(
            f"{path} was compiled with normalisation v{header['normalization_version']}, this rulelife "
            f"uses v{NORMALIZATION_VERSION}; rebuild it with `rulelife bundle publish`"
        )
    # Decoding makes hundreds of thousands of small objects that all live as
    # long as the bundle; pausing the collector meanwhile saves it scanning
    # them again and again.
    collecting = gc.isenabled()
    gc.disable()
    try:
        matcher = None
        lexicon = ()
        if sizes[1]:
            data = json.loads(bytes(payload[sizes[0] : sizes[0] + sizes[1]]))
            lexicon = tuple(LexiconPhrase.from_dict(item) for item in data["phrases"])
        if header.get("automaton_format") == _AUTOMATON_FORMAT:
            try:
                state = _CompiledOnly(io.BytesIO(payload[sizes[0] + sizes[1] :])).load()
                rules, keys, phrases, automaton = state[:4]
                parts = [(automaton, keys)]
                shadow = None
                if len(state) == 8:  # the shadow matcher's state follows (see encode_bundle)
                    shadow = Matcher(state[4], automaton=state[7], key_table=(state[5], state[6]), lexicon=lexicon)
                    parts.append((state[7], state[5]))
                expected = 8 if "shadow_rule_count" in header else 4
                whole = len(state) == expected and all(len(a) == len(k) for a, k in parts)
                if whole and len(automaton) == header["pattern_count"]:
                    matcher = Matcher(rules, automaton=automaton, key_table=(keys, phrases), shadow=shadow,
                                      lexicon=lexicon)
            except (pickle.UnpicklingError, ValueError, TypeError, EOFError, AttributeError):
                matcher = None  # rebuilt below from the rules, which the checksum vouches for
        if matcher is None:
            rules = tuple(CompiledRule.from_dict(item) for item in json.loads(bytes(payload[: sizes[0]])))
            matcher = Matcher(rules, lexicon=lexicon)
    finally:
        if collecting:
            gc.enable()
    return Bundle(
        number=int(header["number"]),
        created_at=header["created_at"],
        rulelife_version=header["rulelife_version"],
        normalization_version=header["normalization_version"],
        content_hash=header["content_hash"],
        checksum=declared,
        rules=tuple(sorted((*matcher.rules, *matcher.shadow_rules), key=lambda r: r.id)),
        matcher=matcher,
        path=path,
        lexicon_version=header.get("lexicon_version"),
        serving=ServingSettings.from_header(header["serving"]) if "serving" in header else None,
    )


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
    """A folder of numbered bundles, a ``CURRENT`` pointer and a publish history."""

    def __init__(self, root: Path):
        self.root = Path(root)

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
        return read_bundle(path)

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
            data, header = encode_bundle(rules, (numbers[-1] + 1) if numbers else 1, lexicon, serving)
            if numbers:
                latest = self.peek_header(self.path_of(numbers[-1])) or {}
                if (latest.get("content_hash"), latest.get("serving")) == (header["content_hash"],
                                                                         header.get("serving")):
                    try:
                        return self.load(numbers[-1]), False
                    except BundleError as exc:
                        log.warning("writing bundle %s: the newest one holds the same rules but is damaged (%s)",
                                    header["number"], exc)
            path = self.path_of(header["number"])
            atomic_write(path, data)
            return read_bundle(path), True

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
        with open(self.history_file, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, sort_keys=True) + "\n")

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
            return PublishResult(bundle, built, False)
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

    def pointed(self, pointer: dict) -> Bundle:
        """Load and verify the bundle ``pointer`` (as :meth:`pointer` returns it) names."""
        return read_bundle(self.root / pointer["file"], expected_checksum=pointer["checksum"])

    def history(self) -> list[dict]:
        if not self.history_file.exists():
            return []
        lines = self.history_file.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

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
