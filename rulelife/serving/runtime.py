"""The runtime classifier embedded in the chatbot service.

>>> clf = RuleClassifier.from_store("bundles/")          # doctest: +SKIP
>>> m = clf.classify("Where is my order #123?", locale="en-US", query_id="q-1")  # doctest: +SKIP
>>> if m is None or m.shadow:                            # doctest: +SKIP
...     intent = call_model(text)                        # the model still answers shadow rows

It serves the bundle ``CURRENT`` points to, and :meth:`RuleClassifier.refresh`
(or the background poll) swaps in a newly published one without a restart.
A new bundle that fails verification is refused and the last good one keeps
serving. Reads never lock: the matcher is an immutable object behind one
reference, and replacing a reference is atomic in Python.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from rulelife.errors import BundleError
from rulelife.rules.matcher import Explanation, LexiconVeto, as_list
from rulelife.rules.normalize import normalize
from rulelife.serving.bundle import Bundle, BundleStore

__all__ = ["Decision", "Match", "RuleClassifier", "format_lexicon_veto", "format_shadow_rules", "in_shadow_sample",
           "parse_lexicon_veto", "parse_shadow_rules"]

log = logging.getLogger("rulelife.serving.runtime")

_SCALE = float(1 << 64)


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
    digest = hashlib.blake2b(query_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE < rate


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


class RuleClassifier:
    """Classify queries with the published rule bundle.

    Parameters
    ----------
    store
        Folder of bundles holding ``CURRENT``.
    shadow_rate
        Share of rule answers also sent to the model (0..1), decided by a hash
        of the query id.
    """

    def __init__(self, store: Path | str, *, shadow_rate: float = 0.05):
        if not 0.0 <= shadow_rate <= 1.0:
            raise ValueError(f"shadow_rate must be between 0 and 1, got {shadow_rate}; 0.05 is the default")
        self.store = BundleStore(Path(store))
        self.shadow_rate = shadow_rate
        self._lock = threading.Lock()  # serialises refreshes, never classify
        self._bundle: Bundle = self.store.current()
        self._pointer = self.store.pointer()
        self.last_error: str | None = None
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()

    @classmethod
    def from_store(cls, store: Path | str, *, shadow_rate: float = 0.05) -> RuleClassifier:
        """Load the bundle ``CURRENT`` points to in ``store``."""
        return cls(store, shadow_rate=shadow_rate)

    @property
    def bundle(self) -> Bundle:
        return self._bundle

    @property
    def bundle_version(self) -> int:
        return self._bundle.number

    def classify(self, text: str, *, locale: str | None = None, query_id: str | None = None) -> Match | None:
        """The rule answer for ``text``, or None when no rule fires.

        Without a ``query_id`` the shadow decision is a random draw at the same
        rate (unbiased, but not reproducible): pass the id in production.
        """
        bundle = self._bundle  # one read: a concurrent refresh cannot mix bundles
        result = bundle.matcher.match_normalized(normalize(text), locale)
        if result is None:
            return None
        return self._match(result, bundle.number, query_id)

    def _match(self, result, number: int, query_id: str | None) -> Match:
        if query_id is None:
            shadow = random.random() < self.shadow_rate
        else:
            shadow = in_shadow_sample(query_id, self.shadow_rate)
        return Match(result.intent, result.rule_id, result.rule_version, number, result.pattern, shadow,
                     result.fired)

    def decide(self, text: str, *, locale: str | None = None, query_id: str | None = None) -> Decision:
        """:meth:`classify`'s answer and what the service logs with it, for a hit or a miss.

        ``decide(...).match`` is what :meth:`classify` returns; ``shadow_rules``
        names the shadow rules that would have fired (log them as
        ``rule_id@version``, versions from :attr:`bundle`).
        """
        bundle = self._bundle
        normalized = normalize(text)
        result, veto = bundle.matcher.match_and_veto_normalized(normalized, locale)
        match = None if result is None else self._match(result, bundle.number, query_id)
        return Decision(match, bundle.number, False if match is None else match.shadow,
                        bundle.matcher.shadow_fired_normalized(normalized, locale), veto)

    def decide_many(
        self,
        texts: Iterable[str],
        locales: Iterable[str | None] | str | None = None,
        query_ids: Iterable[str] | None = None,
    ) -> list[Decision]:
        """:meth:`decide` over many queries (arguments as :meth:`classify_many`), one bundle for all."""
        bundle = self._bundle
        texts = as_list(texts)
        if locales is not None and not isinstance(locales, str):
            locales = as_list(locales)
        pairs = bundle.matcher.match_and_veto_many(texts, locales)
        matches = self._classify_many(bundle, [result for result, _ in pairs], query_ids)
        shadows = bundle.matcher.shadow_many(texts, locales)
        number = bundle.number
        return [Decision(m, number, False if m is None else m.shadow, s, v)
                for m, s, (_, v) in zip(matches, shadows, pairs)]

    def classify_many(
        self,
        texts: Iterable[str],
        locales: Iterable[str | None] | str | None = None,
        query_ids: Iterable[str] | None = None,
    ) -> list[Match | None]:
        """:meth:`classify` over many queries, element for element the same answers."""
        bundle = self._bundle
        return self._classify_many(bundle, bundle.matcher.match_many(texts, locales), query_ids)

    def _classify_many(self, bundle: Bundle, results: list, query_ids) -> list[Match | None]:
        ids: Sequence[str | None] = as_list(query_ids) if query_ids is not None else [None] * len(results)
        if len(ids) != len(results):
            raise ValueError(f"got {len(results)} texts but {len(ids)} query ids; pass one id per text")
        rate = self.shadow_rate
        number = bundle.number
        blake2b = hashlib.blake2b
        # One Match per distinct (result, shadow) in this call: the matcher
        # shares result objects between equal outcomes, and `results` keeps
        # them alive, so their ids are stable for the whole loop.
        made: dict[tuple[int, bool], Match] = {}
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
            else:  # in_shadow_sample, inlined
                digest = blake2b(query_id.encode("utf-8"), digest_size=8).digest()
                shadow = int.from_bytes(digest, "big") / _SCALE < rate
            key = (id(result), shadow)
            match = made.get(key)
            if match is None:
                match = made[key] = Match(result.intent, result.rule_id, result.rule_version, number,
                                          result.pattern, shadow, result.fired)
            append(match)
        return out

    def explain(self, text: str, *, locale: str | None = None) -> Explanation:
        return self._bundle.matcher.explain(text, locale)

    def refresh(self) -> bool:
        """Load a newly published bundle; return True if the one served changed.

        A bundle that fails verification is refused: the last good one keeps
        serving and :attr:`last_error` says why.
        """
        with self._lock:
            try:
                pointer = self.store.pointer()
                if pointer is None or pointer == self._pointer:
                    return False
                bundle = self.store.current()
            except BundleError as exc:
                self.last_error = str(exc)
                log.error("keeping bundle %s: %s", self._bundle.number, exc)
                return False
            self._bundle = bundle
            self._pointer = pointer
            self.last_error = None
            log.info("now serving bundle %s", bundle.number)
            return True

    def start_polling(self, interval: float = 30.0) -> None:
        """Call :meth:`refresh` every ``interval`` seconds in a daemon thread."""
        if interval <= 0:
            raise ValueError(f"interval must be positive seconds, got {interval}")
        if self._poller is not None and self._poller.is_alive():
            return
        self._stop.clear()

        def poll() -> None:
            while not self._stop.wait(interval):
                self.refresh()

        self._poller = threading.Thread(target=poll, name="rulelife-bundle-poll", daemon=True)
        self._poller.start()

    def stop_polling(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join()
            self._poller = None

    def close(self) -> None:
        self.stop_polling()
