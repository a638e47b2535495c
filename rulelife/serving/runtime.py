"""The runtime classifier embedded in the chatbot service.

>>> clf = RuleClassifier.from_store("bundles/")          # doctest: +SKIP
>>> m = clf.classify("Where is my order #123?", locale="en-US", query_id="q-1")  # doctest: +SKIP
>>> if m is None or m.shadow:                            # doctest: +SKIP
...     intent = call_model(text)                        # the model still answers shadow rows

It serves the bundle ``CURRENT`` points to, and :meth:`RuleClassifier.refresh`
(or the background poll) swaps in a newly published one without a restart.
A new bundle that fails verification is refused and the last good one keeps
serving. Reads never lock: what ``classify`` reads (bundle, matcher, serving
settings) is one immutable object behind one reference, and replacing a
reference is atomic in Python.

The poll survives anything the bundle folder holds: every error of a refresh
is kept (:meth:`RuleClassifier.health`), logged once while it lasts, and the
next good publish is picked up. A process that starts while ``CURRENT`` is
damaged serves the most recently published bundle that verifies. A forked
worker (gunicorn ``--preload``, ``multiprocessing``) polls on its own.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
import random
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from rulelife.errors import BundleError
from rulelife.rules.matcher import BACKENDS, Explanation, LexiconVeto, as_list, require_backend
from rulelife.rules.normalize import normalize
from rulelife.serving import signing
from rulelife.serving.bundle import Bundle, BundleStore, ServingSettings

__all__ = ["Decision", "Health", "Match", "RuleClassifier", "format_lexicon_veto", "format_shadow_rules",
           "in_shadow_sample", "parse_lexicon_veto", "parse_shadow_rules"]

log = logging.getLogger("rulelife.serving.runtime")

_SCALE = float(1 << 64)
BACKEND_ENV = "RULELIFE_MATCHER_BACKEND"  # the matcher backend when RuleClassifier is not given one
_BLAKE2B_64 = hashlib.blake2b(digest_size=8)  # never updated: copied per query id
_new_tuple = tuple.__new__  # builds a named tuple without the Python-level __new__ of its class


def in_shadow_sample(query_id: str, rate: float) -> bool:
    """Whether ``query_id`` falls in the shadow sample at ``rate``.

    A hash, not a random draw, so the decision is reproducible: the runtime,
    a replay and the nightly job all agree on which queries were sampled.
    BLAKE2b spreads sequential ids uniformly (CRC32 would not).
    """
    if rate <= 0.0:
        return False
    if rate >= 1.0:
        return True
    return _draw(query_id) < rate


def _draw(query_id: str) -> float:
    """The query id's point in [0, 1): the first 8 bytes of its BLAKE2b-64, big-endian, over 2**64.

    Copying a prepared hasher skips parsing the constructor's arguments: 0.44
    against 0.62 µs a call here, and this runs on every rule answer.
    """
    hasher = _BLAKE2B_64.copy()
    hasher.update(query_id.encode("utf-8"))
    return int.from_bytes(hasher.digest(), "big") / _SCALE


def format_shadow_rules(tags) -> str | None:
    """The ``shadow_rules`` cell for ``(rule_id, version)`` pairs: ``id@version;...``, None when empty.

    >>> format_shadow_rules([("faq.hours", "0a1b"), ("promo.sale", "ff00")])
    'faq.hours@0a1b;promo.sale@ff00'
    """
    return ";".join(f"{rule_id}@{version}" for rule_id, version in tags) or None


def parse_shadow_rules(cell: str) -> list[tuple[str, str]]:
    """Inverse of :func:`format_shadow_rules` for a valid cell.

    >>> parse_shadow_rules("faq.hours@0a1b;promo.sale@ff00")
    [('faq.hours', '0a1b'), ('promo.sale', 'ff00')]
    """
    return [tuple(tag.rsplit("@", 1)) for tag in cell.split(";")]


def format_lexicon_veto(veto: LexiconVeto | None) -> str | None:
    """The ``lexicon_veto`` cell of a decision: a JSON object ``{"rule_id@version": phrase}``, None without a veto.

    JSON, so any phrase (``;``, ``=``, quotes, any script) round-trips; the key
    is a slug and a hex version, as in ``shadow_rules``.

    >>> format_lexicon_veto(LexiconVeto("pin_blocked.blocked", "0a1b", "stole", "card_stolen"))
    '{"pin_blocked.blocked@0a1b": "stole"}'
    """
    if veto is None:
        return None
    return json.dumps({f"{veto.rule_id}@{veto.rule_version}": veto.phrase}, ensure_ascii=False)


def parse_lexicon_veto(cell: str) -> list[tuple[str, str, str]]:
    """Inverse of :func:`format_lexicon_veto` for a valid cell: ``(rule_id, version, phrase)`` pairs.

    >>> parse_lexicon_veto('{"pin_blocked.blocked@0a1b": "stole"}')
    [('pin_blocked.blocked', '0a1b', 'stole')]
    """
    return [(*key.rsplit("@", 1), phrase) for key, phrase in json.loads(cell).items()]


class Match(NamedTuple):
    """A rule's answer for one query (a named tuple: it is built on the hot path).

    ``shadow`` True means the query is in the shadow sample: answer with the
    rule if you like, but call the model too and log its answer, so the
    rule's agreement stays measurable after promotion.
    """

    intent: str
    rule_id: str
    rule_version: str
    bundle_version: int
    pattern: str
    shadow: bool
    fired: tuple[str, ...]


class Decision(NamedTuple):
    """What the runtime decided for one query, hit or miss, and what it logs.

    ``match`` is the rule answer (None: call the model); ``bundle_version``
    the bundle that decided (read once, so a concurrent refresh cannot mix
    two); ``shadow`` the shadow-sample flag of a hit (False on a miss);
    ``shadow_rules`` the ids of the shadow rules that would have fired,
    sorted (their versions are in the bundle). A shadow rule never answers.
    ``veto`` names the rule that would have answered had the safety lexicon
    not stopped it, and the phrase (and its safety intent) that did; None
    when the lexicon changed nothing. ``match`` may still be a rule of the
    phrase's own intent.
    """

    match: Match | None
    bundle_version: int
    shadow: bool
    shadow_rules: tuple[str, ...]
    veto: LexiconVeto | None = None


def _iso(at: float | None) -> str | None:
    return None if at is None else datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Health:
    """What a readiness probe asks the runtime: which bundle it serves and whether its polling is well.

    ``serving_current`` is False while the bundle served is not the one
    ``CURRENT`` names (a refused publish, a start-up fallback);
    ``last_error`` and ``last_error_at`` are the standing error (None once a
    poll succeeds again); ``last_poll_ok_at`` the last refresh that read
    ``CURRENT`` and serves what it names. Times are UTC ISO strings,
    ``bundle_age_seconds`` counts from the bundle's creation.
    """

    bundle_version: int
    bundle_created_at: str
    bundle_age_seconds: float | None
    serving_current: bool
    polling: bool
    last_error: str | None
    last_error_at: str | None
    last_poll_ok_at: str | None

    @property
    def ok(self) -> bool:
        return self.last_error is None

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


class _Serving:
    """Everything ``classify`` reads, behind one reference, so a refresh swaps it whole."""

    __slots__ = ("bundle", "matcher", "match", "number", "shadow_rate", "max_text_length", "pointer")

    def __init__(self, bundle: Bundle, pointer: dict | None, settings: ServingSettings, backend: str = BACKENDS[0],
                 previous: _Serving | None = None):
        self.bundle = bundle
        # A bundle of equal content shares the matcher it replaces (read_bundle's reuse), and so its backend's.
        same = previous is not None and previous.bundle.matcher is bundle.matcher
        self.matcher = previous.matcher if same else bundle.matcher.with_backend(backend)
        self.match = self.matcher.match_normalized  # bound once, not per request
        self.number = bundle.number
        self.shadow_rate = settings.shadow_rate
        self.max_text_length = settings.max_text_length
        self.pointer = pointer  # CURRENT as read when this bundle was loaded; None for a fallback


# Classifiers that poll, restarted in a forked child: the poller thread does
# not survive fork(), and the locks may have been held by it at that moment.
_POLLING: weakref.WeakSet[RuleClassifier] = weakref.WeakSet()
_KEPT_SHADOW_VERSIONS = 8  # bundles whose shadow rule versions stay known (decisions made just before a swap)


def _restart_polling_after_fork() -> None:
    for classifier in list(_POLLING):
        classifier._after_fork()


os.register_at_fork(after_in_child=_restart_polling_after_fork)


class RuleClassifier:
    """Classify queries with the published rule bundle.

    Parameters
    ----------
    store
        Folder of bundles holding ``CURRENT``.
    shadow_rate
        Share of rule answers also sent to the model (0..1), decided by a hash
        of the query id. Default: the workspace's ``shadow_rate``, carried in
        the bundle; a value given here overrides it (and says so in the log).
    max_text_length
        Longest message (characters) a rule may answer; a longer one is a
        miss (the model answers), so one request's cost is bounded. Default
        as ``shadow_rate``: the workspace's, carried in the bundle.
    public_key
        The Ed25519 public key (a PEM file's path, PEM bytes or a key object;
        default: the file ``$RULELIFE_BUNDLE_PUBLIC_KEY`` names, if set) whose
        signature every bundle must carry. An unsigned or wrongly signed
        bundle is then refused like a damaged one: the last good bundle keeps
        serving and :meth:`health` says why. Without a key, bundles are
        checked against their checksum only, which stops accidents, not
        someone who can write the bundle folder.
    matcher_backend
        The automaton library ``classify`` walks: ``pyahocorasick`` (the
        default; loads straight from the bundle) or ``ahocorasick_rs`` (the
        optional ahocorasick-rs package: faster per query, but built at each
        load, see :meth:`~rulelife.rules.matcher.Matcher.with_backend`).
        Default: ``$RULELIFE_MATCHER_BACKEND``, else pyahocorasick. Answers
        are the same either way.
    """

    def __init__(self, store: Path | str, *, shadow_rate: float | None = None, max_text_length: int | None = None,
                 public_key=None, matcher_backend: str | None = None):
        if shadow_rate is not None and not 0.0 <= shadow_rate <= 1.0:
            raise ValueError(f"shadow_rate must be between 0 and 1, got {shadow_rate}; omit it to use the "
                             "workspace's setting carried in the bundle")
        if max_text_length is not None and (not isinstance(max_text_length, int) or max_text_length < 1):
            raise ValueError(f"max_text_length must be a positive integer, got {max_text_length!r}; omit it to "
                             "use the workspace's setting carried in the bundle")
        backend = matcher_backend or os.environ.get(BACKEND_ENV) or BACKENDS[0]
        require_backend(backend)  # an unknown or missing backend is a start-up error, not a bundle's
        self.matcher_backend = backend
        if public_key is None and os.environ.get(signing.PUBLIC_KEY_ENV):
            public_key = os.environ[signing.PUBLIC_KEY_ENV]
        self.store = BundleStore(Path(store), public_key=public_key)
        self._overrides = {"shadow_rate": shadow_rate, "max_text_length": max_text_length}
        self._warned: set[tuple] = set()
        self._lock = threading.Lock()  # serialises refreshes, never classify
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()
        self._interval: float | None = None
        self._shadow_versions: OrderedDict[int, dict[str, str]] = OrderedDict()
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_poll_ok_at: float | None = None
        self._logged_error: str | None = None
        self._refused: tuple | None = None  # (CURRENT, file signature, error) of the last refused publish
        self._serving = self._start()

    @classmethod
    def from_store(cls, store: Path | str, *, shadow_rate: float | None = None, max_text_length: int | None = None,
                   public_key=None, matcher_backend: str | None = None) -> RuleClassifier:
        """Load the bundle ``CURRENT`` points to in ``store`` (arguments as the class's)."""
        return cls(store, shadow_rate=shadow_rate, max_text_length=max_text_length, public_key=public_key,
                   matcher_backend=matcher_backend)

    @property
    def bundle(self) -> Bundle:
        return self._serving.bundle

    @property
    def bundle_version(self) -> int:
        return self._serving.number

    @property
    def shadow_rate(self) -> float:
        """The shadow rate in force: the constructor's, else the bundle's, else the default."""
        return self._serving.shadow_rate

    @property
    def max_text_length(self) -> int:
        return self._serving.max_text_length

    def classify(self, text: str, *, locale: str | None = None, query_id: str | None = None) -> Match | None:
        """The rule answer for ``text``, or None when no rule fires.

        Without a ``query_id`` the shadow decision is a random draw at the same
        rate (unbiased, but not reproducible): pass the id in production.
        """
        serving = self._serving  # one read: a concurrent refresh cannot mix bundles
        if len(text) > serving.max_text_length:
            return None
        result = serving.match(normalize(text), locale)
        if result is None:
            return None  # a miss: no shadow hash, no Match
        return self._match(result, serving, query_id)

    @staticmethod
    def _match(result, serving: _Serving, query_id: str | None) -> Match:
        rate = serving.shadow_rate
        if query_id is None:
            shadow = random.random() < rate
        elif rate <= 0.0 or rate >= 1.0:
            shadow = rate >= 1.0
        else:
            shadow = _draw(query_id) < rate
        rule_id, rule_version, intent, pattern, fired = result
        return _new_tuple(Match, (intent, rule_id, rule_version, serving.number, pattern, shadow, fired))

    def decide(self, text: str, *, locale: str | None = None, query_id: str | None = None) -> Decision:
        """:meth:`classify`'s answer and what the service logs with it, for a hit or a miss.

        ``decide(...).match`` is what :meth:`classify` returns; ``shadow_rules``
        names the shadow rules that would have fired (log them as
        ``rule_id@version``, versions from :attr:`bundle`).
        """
        serving = self._serving
        if len(text) > serving.max_text_length:
            return Decision(None, serving.number, False, ())
        matcher = serving.matcher
        normalized = normalize(text)
        result, veto = matcher.match_and_veto_normalized(normalized, locale)
        match = None if result is None else self._match(result, serving, query_id)
        return Decision(match, serving.number, False if match is None else match.shadow,
                        matcher.shadow_fired_normalized(normalized, locale), veto)

    def decide_many(
        self,
        texts: Iterable[str],
        locales: Iterable[str | None] | str | None = None,
        query_ids: Iterable[str] | None = None,
    ) -> list[Decision]:
        """:meth:`decide` over many queries (arguments as :meth:`classify_many`), one bundle for all."""
        serving = self._serving
        texts = _within(as_list(texts), serving.max_text_length)
        if locales is not None and not isinstance(locales, str):
            locales = as_list(locales)
        pairs = serving.matcher.match_and_veto_many(texts, locales)
        matches = self._classify_many(serving, [result for result, _ in pairs], query_ids)
        shadows = serving.matcher.shadow_many(texts, locales)
        number = serving.number
        return [Decision(m, number, False if m is None else m.shadow, s, v)
                for m, s, (_, v) in zip(matches, shadows, pairs)]

    def classify_many(
        self,
        texts: Iterable[str],
        locales: Iterable[str | None] | str | None = None,
        query_ids: Iterable[str] | None = None,
    ) -> list[Match | None]:
        """:meth:`classify` over many queries, element for element the same answers."""
        serving = self._serving
        texts = _within(as_list(texts), serving.max_text_length)
        return self._classify_many(serving, serving.matcher.match_many(texts, locales), query_ids)

    @staticmethod
    def _classify_many(serving: _Serving, results: list, query_ids) -> list[Match | None]:
        ids: Sequence[str | None] = as_list(query_ids) if query_ids is not None else [None] * len(results)
        if len(ids) != len(results):
            raise ValueError(f"got {len(results)} texts but {len(ids)} query ids; pass one id per text")
        rate = serving.shadow_rate
        number = serving.number
        prepared = _BLAKE2B_64
        scale = _SCALE
        # One Match per distinct (result, shadow) in this call: the matcher
        # shares result objects between equal outcomes, and `results` keeps
        # them alive, so their ids are stable for the whole loop.
        made: tuple[dict[int, Match], dict[int, Match]] = ({}, {})  # by shadow flag, then id(result)
        out: list[Match | None] = []
        append = out.append
        for result, query_id in zip(results, ids):
            if result is None:
                append(None)
                continue
            if query_id is None:
                shadow = random.random() < rate
            elif rate <= 0.0 or rate >= 1.0:
                shadow = rate >= 1.0
            else:  # _draw, inlined: one call fewer per row
                hasher = prepared.copy()
                hasher.update(query_id.encode("utf-8"))
                shadow = int.from_bytes(hasher.digest(), "big") / scale < rate
            known = made[shadow]
            match = known.get(id(result))
            if match is None:
                rule_id, rule_version, intent, pattern, fired = result
                match = known[id(result)] = _new_tuple(Match, (intent, rule_id, rule_version, number, pattern,
                                                               shadow, fired))
            append(match)
        return out

    def explain(self, text: str, *, locale: str | None = None) -> Explanation:
        return self._serving.matcher.explain(text, locale)

    def shadow_versions(self, bundle_version: int) -> dict[str, str] | None:
        """Shadow rule id -> version in bundle ``bundle_version``, for a decision's ``shadow_rules``.

        Kept for the last few bundles served, so a decision made just before a
        swap is still written with its own bundle's versions; None for an
        older one.
        """
        return self._shadow_versions.get(bundle_version)

    # -- loading ---------------------------------------------------------------------------------------------------

    def _start(self) -> _Serving:
        """The first bundle: the one CURRENT names, or, when that fails, the most recently
        published one that verifies (said in the log and in :meth:`health`)."""
        pointer = None
        try:
            pointer = self.store.pointer()
            if pointer is None:
                raise BundleError(f"no bundle has been published in {self.store.root}; "
                                  "run `rulelife bundle publish` first")
            serving = self._serve(lambda: self.store.pointed(pointer), pointer)
            self.last_poll_ok_at = time.time()
            return serving
        except Exception as exc:
            if pointer is None and isinstance(exc, BundleError) and not self.store.current_file.exists():
                raise  # nothing was ever published: there is nothing to fall back to
            self._note_error(exc, pointer, quiet=True)
            try:
                bundle = self.store.fallback(skip=pointer["number"] if pointer else None)
            except BundleError as none:
                raise BundleError(f"{self.last_error}; {none}") from None
            log.warning("CURRENT in %s cannot be served (%s); serving bundle %s, the most recently published one "
                        "that verifies, until a good publish", self.store.root, self.last_error, bundle.number)
            return self._serve(lambda: bundle, None)

    def _serve(self, load: Callable[[], Bundle], pointer: dict | None, previous: _Serving | None = None) -> _Serving:
        """Load a bundle with the collector paused, then freeze what the load made.

        A 100K-pattern bundle is hundreds of thousands of objects that live as
        long as it is served; left to the collector, the first collections
        after the load walk all of them while holding the GIL, which stalls
        every request thread of the process. Frozen, they are never walked
        (they are freed by reference counting when the bundle is replaced).
        """
        collecting = gc.isenabled()
        gc.disable()
        try:
            bundle = load()
            gc.freeze()
        finally:
            if collecting:
                gc.enable()
        serving = _Serving(bundle, pointer, self._settings_for(bundle), self.matcher_backend, previous)
        if previous is not None and serving.matcher is not previous.matcher:
            _warm(serving.matcher, previous.matcher)
        shadow = bundle.matcher.shadow_matcher
        self._shadow_versions[bundle.number] = shadow.versions() if shadow is not None else {}
        self._shadow_versions.move_to_end(bundle.number)
        while len(self._shadow_versions) > _KEPT_SHADOW_VERSIONS:
            self._shadow_versions.popitem(last=False)
        return serving

    def _settings_for(self, bundle: Bundle) -> ServingSettings:
        carried = bundle.serving or ServingSettings()
        chosen = {}
        for name, given in self._overrides.items():
            inside = getattr(carried, name)
            chosen[name] = inside if given is None else given
            if given is not None and bundle.serving is not None and given != inside \
                    and (name, given, inside) not in self._warned:
                self._warned.add((name, given, inside))
                log.warning("%s=%s given to RuleClassifier overrides the workspace's %s carried in bundle %s",
                            name, given, inside, bundle.number)
        return ServingSettings(**chosen)

    def refresh(self) -> bool:
        """Load a newly published bundle; return True if the one served changed.

        Never raises: a bundle that fails verification, a damaged or
        unreadable ``CURRENT``, anything else, is refused; the last good bundle
        keeps serving, :attr:`last_error` (and :meth:`health`) says why, the
        log says it once while it lasts, and the next good publish is served.
        """
        with self._lock:
            pointer = None
            try:
                pointer = self.store.pointer()
                if pointer is None:
                    raise BundleError(f"{self.store.current_file} is gone; keeping the bundle served until the "
                                      "next publish")
                if pointer == self._serving.pointer:
                    self._poll_ok()
                    return False
                signature = (pointer, self._file_signature(pointer))
                if self._refused is not None and self._refused[0] == signature:
                    raise _Refused(self._refused[1])  # the same damaged publish: not verified again
                current = self._serving
                # A publish that changed a few rules is derived from the matcher in service
                # (rulelife.serving.lineage): nothing the size of the automaton is restored or freed.
                derive = self.matcher_backend == BACKENDS[0]
                serving = self._serve(lambda: self.store.pointed(pointer, reuse=current.bundle, derive=derive),
                                      pointer, current)
            except Exception as exc:  # the poll must outlive whatever the bundle folder holds
                self._note_error(exc, pointer)
                return False
            self._serving = serving
            self._poll_ok()
            log.info("now serving bundle %s", serving.number)
            return True

    def _file_signature(self, pointer: dict) -> tuple | None:
        try:
            stat = os.stat(self.store.root / pointer["file"])
        except OSError:
            return None
        return stat.st_ino, stat.st_size, stat.st_mtime_ns

    def _note_error(self, exc: BaseException, pointer: dict | None, *, quiet: bool = False) -> None:
        message = str(exc) if isinstance(exc, BundleError) else f"{type(exc).__name__}: {exc}"
        if pointer is not None:
            self._refused = ((pointer, self._file_signature(pointer)), message)
        if message != self.last_error:  # its time is when it began; it stands until a poll succeeds
            self.last_error, self.last_error_at = message, time.time()
        if message != self._logged_error:
            self._logged_error = message
            if not quiet:  # a start-up fallback says it in its own warning
                log.error("keeping bundle %s: %s", self._serving.number, message,
                          exc_info=None if isinstance(exc, BundleError) else exc)

    def _poll_ok(self) -> None:
        self.last_error = self.last_error_at = self._logged_error = self._refused = None
        self.last_poll_ok_at = time.time()

    def health(self) -> Health:
        """The runtime's state for a readiness probe or a status page (see :class:`Health`)."""
        serving = self._serving
        try:
            created = datetime.fromisoformat(serving.bundle.created_at).timestamp()
            age = round(time.time() - created, 3)
        except (TypeError, ValueError):
            age = None
        return Health(
            bundle_version=serving.number,
            bundle_created_at=serving.bundle.created_at,
            bundle_age_seconds=age,
            serving_current=serving.pointer is not None and self.last_error is None,
            polling=self._poller is not None and self._poller.is_alive(),
            last_error=self.last_error,
            last_error_at=_iso(self.last_error_at),
            last_poll_ok_at=_iso(self.last_poll_ok_at),
        )

    # -- polling ---------------------------------------------------------------------------------------------------

    def start_polling(self, interval: float = 30.0) -> None:
        """Call :meth:`refresh` every ``interval`` seconds in a daemon thread.

        A forked child (a gunicorn ``--preload`` worker, a ``multiprocessing``
        fork) starts its own poller: threads do not survive ``fork()``.
        """
        if interval <= 0:
            raise ValueError(f"interval must be positive seconds, got {interval}")
        if self._poller is not None and self._poller.is_alive():
            return
        self._interval = interval
        self._stop.clear()
        stop = self._stop

        def poll() -> None:
            while not stop.wait(interval):
                self.refresh()  # never raises

        self._poller = threading.Thread(target=poll, name="rulelife-bundle-poll", daemon=True)
        self._poller.start()
        _POLLING.add(self)

    def stop_polling(self) -> None:
        _POLLING.discard(self)
        self._interval = None
        self._stop.set()
        if self._poller is not None:
            self._poller.join()
            self._poller = None

    def _after_fork(self) -> None:
        """In a forked child: fresh locks (the parent's poller may have held one) and a poller of its own."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poller = None
        if self._interval is not None:
            self.start_polling(self._interval)

    def close(self) -> None:
        self.stop_polling()


_WARMED_LOCALES = 64  # the first locales the replaced matcher saw (the common ones come first)


def _warm(matcher, replaced) -> None:
    """Answer a blank query in each locale ``replaced`` served, before ``matcher`` serves.

    A matcher works out which rules a locale may fire on when it first sees the
    locale: a scan of every rule, 20-100 ms at 100K patterns, paid by the first
    request in that locale after every reload. Done here, on the refreshing
    thread, the new bundle is served warm.
    """
    for locale in list(replaced._locale_cache)[:_WARMED_LOCALES]:
        matcher.match_and_veto_normalized(" ", locale)
        matcher.shadow_fired_normalized(" ", locale)


class _Refused(BundleError):
    """A publish already refused, seen again unchanged (its message is the first refusal's)."""


def _within(texts: list, limit: int) -> list:
    """``texts`` with every string longer than ``limit`` characters made empty (no rule reads it)."""
    try:
        if max(map(len, texts), default=0) <= limit:  # at C speed when every text is a string
            return texts
    except TypeError:  # a missing text (None, NaN) among them
        if not any(isinstance(text, str) and len(text) > limit for text in texts):
            return texts
    return ["" if isinstance(text, str) and len(text) > limit else text for text in texts]
