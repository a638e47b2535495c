"""Loading a bundle that differs from the one served by a few rules: derive its matcher.

A bundle's readable rules are one JSON list, sorted by id, written by
:func:`rulelife.serving.bundle.encode_bundle` with compact separators, so each
rule's text starts ``{"id":`` right after the previous rule's ``}``, and the
bytes ``},{"id":`` occur nowhere else (inside a JSON string a quote is always
escaped). Split there, a rule's text is its identity: the same text is the
same compiled rule. A newly published bundle whose rules are mostly texts the
served bundle's *lineage* (the bundle last loaded whole) already holds is
served by :func:`rulelife.rules.derived.derive` from that bundle's matcher:
only the new texts are decoded, and nothing the size of the automaton is
restored or freed while requests wait for the interpreter lock.

Everything used here is covered by the checks :func:`read_bundle` made before
(checksum, signature, the content hash recomputed from these very bytes), and
the result must have the pattern count the header states; when anything is
off, or the change is too large to be worth it, the bundle is loaded whole.
"""

from __future__ import annotations

import json
import logging

from rulelife.rules.derived import derive
from rulelife.rules.matcher import CompiledRule, Matcher

__all__ = ["Lineage", "rule_texts"]

log = logging.getLogger("rulelife.serving.bundle")

_FIRST = b'[{"id":'
_BETWEEN = b'},{"id":'
_SHADOW_END = b',"shadow":true'  # CompiledRule.to_dict writes it last, and only when set
# A derived matcher walks the base's automaton and one of the new phrases: past these
# shares of the base, loading whole is cheaper to serve and to keep.
_MAX_NEW_PHRASES = (2_000, 0.05)  # at least this many, or this share of the base's patterns
_MAX_DEPARTED = (500, 0.25)  # rules: at least this many, or this share of the base's


def rule_texts(rules_bytes: bytes) -> list[bytes] | None:
    """Each rule's text in a bundle's rules JSON (its object less ``{"id":`` and the final
    ``}``), in the file's order; None for JSON not laid out as the encoder writes it."""
    if rules_bytes == b"[]":
        return []
    if not (rules_bytes.startswith(_FIRST) and rules_bytes.endswith(b"}]")):
        return None
    return rules_bytes[len(_FIRST):-2].split(_BETWEEN)


class Lineage:
    """A matcher loaded whole from a bundle, with that bundle's rules and lexicon as
    written: what the bundles published after it derive their matchers from."""

    def __init__(self, matcher: Matcher, content_hash: str, rules_bytes: bytes, lexicon_bytes: bytes):
        self.matcher = matcher
        self.content_hash = content_hash
        self._rules_bytes = rules_bytes
        self._lexicon_bytes = lexicon_bytes
        self._index: dict[bytes, tuple[bool, int]] | None = None

    def _positions(self) -> dict[bytes, tuple[bool, int]] | None:
        """Rule text -> (shadow, its index in the serving or the shadow matcher), built on first use."""
        if self._index is None:
            texts = rule_texts(self._rules_bytes)
            if texts is None:
                return None
            index, counts = {}, [0, 0]
            for text in texts:
                shadow = text.endswith(_SHADOW_END)
                index[text] = (shadow, counts[shadow])
                counts[shadow] += 1
            self._index, self._rules_bytes = index, b""  # the texts are the index's keys now
        return self._index

    def derive(self, rules_bytes: bytes, lexicon_bytes: bytes, header: dict) -> Matcher | None:
        """The matcher of a verified bundle's rules, derived from this lineage's; None
        when the bundle should be loaded whole (another lexicon, a large change, a
        layout this does not know, a result that does not check out)."""
        if lexicon_bytes != self._lexicon_bytes:
            return None
        positions = self._positions()
        texts = rule_texts(rules_bytes)
        if positions is None or texts is None:
            return None
        base = self.matcher
        limit = max(_MAX_NEW_PHRASES[0], int(base.pattern_count * _MAX_NEW_PHRASES[1]))
        plans: tuple[list, list] = ([], [])
        new_phrases = 0
        try:
            for text in texts:
                known = positions.get(text)
                if known is not None:
                    plans[known[0]].append(known[1])
                    continue
                rule = CompiledRule.from_dict(json.loads(b'{"id":' + text + b"}"))
                new_phrases += len(rule.patterns) + len(rule.exclude)
                if new_phrases > limit:
                    return None
                plans[rule.shadow].append(rule._replace(shadow=False))
            serving, shadow_plan = plans
            departed = len(base._ids) - sum(type(item) is int for item in serving)
            if departed > max(_MAX_DEPARTED[0], _MAX_DEPARTED[1] * len(base._ids)):
                return None
            shadow = None
            kept_shadow = base.shadow_matcher
            if kept_shadow is not None and shadow_plan == list(range(len(kept_shadow.versions()))):
                shadow = kept_shadow  # the shadow rules did not change
            elif shadow_plan:
                shadow = derive(kept_shadow or Matcher([], lexicon=base.lexicon), shadow_plan)
            matcher = derive(base, serving, shadow=shadow)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:  # JSON, a field, an order derive refuses
            log.info("loading bundle %s whole: its rules cannot be derived from the matcher in service (%s)",
                     header.get("number"), exc)
            return None
        shadow_count = len(matcher.shadow_matcher.versions()) if matcher.shadow_matcher is not None else 0
        if matcher.pattern_count != header["pattern_count"] or shadow_count != header.get("shadow_rule_count", 0):
            log.warning("loading bundle %s whole: a matcher derived from the one in service differs from its "
                        "header in size", header.get("number"))
            return None
        return matcher
