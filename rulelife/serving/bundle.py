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
is re-pointing ``CURRENT``. A build or publish first removes the temporary
files a killed one left in the folder.
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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING

import ahocorasick

from rulelife._files import atomic_write, remove_temps
from rulelife._version import __version__
from rulelife.errors import BundleError, BundleIntegrityError
from rulelife.rules.matcher import CompiledRule, LexiconPhrase, Matcher, compile_lexicon, compile_rule
from rulelife.rules.normalize import NORMALIZATION_VERSION

if TYPE_CHECKING:  # the pydantic model is for annotations only: serving never loads it
    from rulelife.rules.definition import Rule

__all__ = ["Bundle", "BundleDiff", "BundleStore", "diff_bundles", "read_bundle"]

MAGIC = b"RULELIFE-BUNDLE 1\n"
MAGIC_SHADOW = b"RULELIFE-BUNDLE 2\n"  # the same layout, with shadow rules (see the module docstring)
MAGIC_LEXICON = b"RULELIFE-BUNDLE 3\n"  # with a safety lexicon section (see the module docstring)
_MAGICS = (MAGIC, MAGIC_SHADOW, MAGIC_LEXICON)
_NAME = re.compile(r"^bundle-(\d{6,})\.rlb$")
_AUTOMATON_FORMAT = f"pyahocorasick-{package_version('pyahocorasick')}-pickle5"

log = logging.getLogger(__name__)


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


def encode_bundle(rules: Sequence[Rule | CompiledRule], number: int, lexicon=None) -> tuple[bytes, dict]:
    """Serialise rules (and the :class:`~rulelife.rules.lexicon.Lexicon`, if any) as
    bundle ``number``; return the file bytes and header. A lexicon without
    phrases is no lexicon."""
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
    if phrases:
        header |= {"lexicon_bytes": len(lexicon_bytes), "lexicon_version": lexicon.version,
                   "lexicon_phrase_count": len(phrases)}
    header["checksum"] = _checksum(header, payload)
    magic = MAGIC_LEXICON if phrases else MAGIC if shadow is None else MAGIC_SHADOW
    data = magic + json.dumps(header, sort_keys=True).encode() + b"\n" + payload
    return data, header


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
        payload = memoryview(data)[end + 1 :]
        sizes = (header["rules_bytes"], header.get("lexicon_bytes", 0), header["compiled_bytes"])
        declared = header["checksum"]
    except (ValueError, KeyError, TypeError):
        raise BundleIntegrityError(f"{path} has a damaged header; {fix}") from None
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

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one writer at a time; readers never lock
            try:
                # Every writer of this folder holds the lock, so any temporary file
                # here now is a killed publish's leftover.
                removed = remove_temps(self.root)
                if removed:
                    log.warning("removed %d temporary file(s) left in %s by an interrupted build or publish",
                                removed, self.root)
                yield
            finally:
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

    def build(self, rules: Sequence[Rule | CompiledRule], lexicon=None) -> tuple[Bundle, bool]:
        """Write the next bundle for ``rules`` and the safety ``lexicon`` (a
        :class:`~rulelife.rules.lexicon.Lexicon` or None); return it and whether it is new.

        Equal content to the newest bundle is not written again: that one is
        returned, so nightly republishing without changes makes no new number.
        """
        with self._locked():
            numbers = self.numbers()
            data, header = encode_bundle(rules, (numbers[-1] + 1) if numbers else 1, lexicon)
            if numbers:
                latest = self.peek_header(self.path_of(numbers[-1]))
                if latest is not None and latest["content_hash"] == header["content_hash"]:
                    return self.load(numbers[-1]), False
            path = self.path_of(header["number"])
            atomic_write(path, data)
            return read_bundle(path), True

    @staticmethod
    def peek_header(path: Path) -> dict | None:
        try:
            with open(path, "rb") as handle:
                if handle.readline() not in _MAGICS:
                    return None
                return json.loads(handle.readline())
        except (OSError, ValueError):
            return None

    def publish(self, number: int, *, actor: str = "", action: str = "publish") -> Bundle:
        """Verify bundle ``number`` and point ``CURRENT`` at it atomically."""
        with self._locked():
            bundle = self.load(number)
            pointer = {"number": bundle.number, "file": bundle.path.name, "checksum": bundle.checksum}
            atomic_write(self.current_file, json.dumps(pointer).encode() + b"\n")
            entry = {
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
                "action": action,
                "number": number,
                "actor": actor,
            }
            with open(self.history_file, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")
            return bundle

    def build_and_publish(self, rules: Sequence[Rule | CompiledRule], *, actor: str = "",
                          lexicon=None) -> tuple[Bundle, bool]:
        """Build (or reuse) a bundle for ``rules`` (and ``lexicon``) and publish it if it is not already CURRENT."""
        bundle, _ = self.build(rules, lexicon)
        pointer = self.pointer()
        if pointer is not None and pointer["number"] == bundle.number:
            return bundle, False
        return self.publish(bundle.number, actor=actor), True

    def pointer(self) -> dict | None:
        """The parsed CURRENT pointer, or None before the first publish."""
        try:
            raw = self.current_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            pointer = json.loads(raw)
            return {"number": int(pointer["number"]), "file": str(pointer["file"]), "checksum": str(pointer["checksum"])}
        except (ValueError, KeyError, TypeError):
            raise BundleIntegrityError(
                f"{self.current_file} is damaged; point it at a good bundle with `rulelife bundle rollback N`"
            ) from None

    def current(self) -> Bundle:
        """Load and verify the bundle CURRENT points to."""
        pointer = self.pointer()
        if pointer is None:
            raise BundleError(
                f"no bundle has been published in {self.root}; run `rulelife bundle publish` first"
            )
        return read_bundle(self.root / pointer["file"], expected_checksum=pointer["checksum"])

    def history(self) -> list[dict]:
        if not self.history_file.exists():
            return []
        lines = self.history_file.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def rollback(self, number: int | None = None, *, actor: str = "") -> Bundle:
        """Point CURRENT at bundle ``number``, or at the one published before the current one."""
        if number is None:
            pointer = self.pointer()
            current = pointer["number"] if pointer else None
            # Walk back along publishes (not rollbacks), so repeated rollbacks
            # keep going back: published 1, 2, 3 → rollback to 2 → rollback to 1.
            published = [e["number"] for e in self.history() if e.get("action") == "publish"]
            position = max((i for i, n in enumerate(published) if n == current), default=len(published))
            earlier = [n for n in published[:position] if n != current]
            if not earlier:
                raise BundleError("nothing to roll back to: no bundle was published before the current one")
            number = earlier[-1]
        return self.publish(number, actor=actor, action="rollback")
