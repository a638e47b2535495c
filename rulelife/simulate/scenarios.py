"""Named drift scenarios: what changes in the traffic, from which day, and whom it should hit.

A :class:`Scenario` is data; the generator asks the helpers at the bottom of
this module what the mix looks like on a given day. Three kinds exist:

``rephrase``
    From ``start_day``, a ``share`` of the queries of ``intents`` in
    ``locales`` use the phrasing set ``phrasings`` (see
    :data:`rulelife.simulate.phrasings.SCENARIO_PHRASINGS`) instead of the
    usual ones, and the weight of ``intents`` in the intent mix is multiplied
    by ``volume_factor``.
``locale_growth``
    From ``start_day``, the share of ``locales[0]`` grows by
    ``share_per_day`` a day up to ``max_share``; the other locales shrink in
    proportion.
``model_retrain``
    From ``start_day``, the log's ``model_version`` is ``model_version``
    (before it, :data:`BASE_MODEL_VERSION`), the model's confidences are
    rescaled (:func:`rulelife.simulate.model.rescale_confidence` with
    ``confidence_scale``), and a ``relabel_share`` of the rows it labelled
    ``relabel_from`` it now labels ``relabel_to`` (the new model draws the
    line between two intents elsewhere); its other predictions are unchanged.

``rules`` records the shipped rule ids the scenario is expected to affect, so
a monitor's findings can be scored against ground truth.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rulelife._files import atomic_write
from rulelife.simulate import phrasings
from rulelife.simulate.catalog import INTENT_SHARES, INTENTS, LOCALE_SHARES, LOCALES

__all__ = [
    "BASE_MODEL_VERSION",
    "KINDS",
    "Scenario",
    "confidence_scale_on",
    "default_scenarios",
    "intent_shares_on",
    "locale_shares_on",
    "model_on",
    "rephrasings_on",
    "write_ground_truth",
]

KINDS = ("rephrase", "locale_growth", "model_retrain")
# The model_version of simulated traffic before any retrain.
BASE_MODEL_VERSION = "model-1"

_PARAMETERS = {
    "rephrase": ("phrasings", "share", "volume_factor"),
    "locale_growth": ("share_per_day", "max_share"),
    "model_retrain": ("confidence_scale", "model_version", "relabel_from", "relabel_to", "relabel_share"),
}


@dataclass(frozen=True)
class Scenario:
    """One drift injected into simulated traffic from ``start_day`` on (see the module docstring)."""

    name: str
    kind: str
    start_day: dt.date
    description: str
    intents: tuple[str, ...] = INTENTS
    locales: tuple[str, ...] = LOCALES
    rules: tuple[str, ...] = ()
    phrasings: str = ""
    share: float = 0.0
    volume_factor: float = 1.0
    share_per_day: float = 0.0
    max_share: float = 0.0
    confidence_scale: float = 1.0
    model_version: str = "model-2"
    relabel_from: str = ""
    relabel_to: str = ""
    relabel_share: float = 0.0

    def __post_init__(self) -> None:
        for name in ("intents", "locales", "rules"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.kind not in KINDS:
            raise ValueError(f"Unknown scenario kind: {self.kind!r}, expected one of {', '.join(KINDS)}.")
        if not isinstance(self.start_day, dt.date) or isinstance(self.start_day, dt.datetime):
            raise ValueError(f"start_day must be a datetime.date, got {self.start_day!r}")
        _check_known("intents", self.intents, INTENTS)
        _check_known("locales", self.locales, LOCALES)
        getattr(self, f"_check_{self.kind}")()

    def _check_rephrase(self) -> None:
        sets = phrasings.SCENARIO_PHRASINGS
        if self.phrasings not in sets:
            raise ValueError(f"phrasings {self.phrasings!r} is unknown; use one of {', '.join(sets)}")
        for locale in self.locales:
            for intent in self.intents:
                if intent not in sets[self.phrasings].get(locale, {}):
                    raise ValueError(
                        f"phrasings {self.phrasings!r} has no {intent} phrasings in {locale}; "
                        "narrow intents/locales or add them to rulelife.simulate.phrasings"
                    )
        if not 0 < self.share <= 1:
            raise ValueError(f"share must be in (0, 1], got {self.share}")
        if self.volume_factor <= 0:
            raise ValueError(f"volume_factor must be greater than 0, got {self.volume_factor}")

    def _check_locale_growth(self) -> None:
        if len(self.locales) != 1:
            raise ValueError(f"locale_growth grows exactly one locale, got locales={list(self.locales)}")
        base = LOCALE_SHARES[LOCALES.index(self.locales[0])]
        if self.share_per_day <= 0:
            raise ValueError(f"share_per_day must be greater than 0, got {self.share_per_day}")
        if not base < self.max_share < 1:
            raise ValueError(f"max_share must be between the base share {base} and 1, got {self.max_share}")

    def _check_model_retrain(self) -> None:
        if self.confidence_scale <= 0:
            raise ValueError(f"confidence_scale must be greater than 0, got {self.confidence_scale}")
        if not isinstance(self.model_version, str) or not self.model_version.strip() \
                or self.model_version == BASE_MODEL_VERSION:
            raise ValueError(f"model_version must name the new model (not {BASE_MODEL_VERSION!r}, the one before "
                             f"it), got {self.model_version!r}")
        if not 0 <= self.relabel_share <= 1:
            raise ValueError(f"relabel_share must be in [0, 1], got {self.relabel_share}")
        if self.relabel_share > 0 and (self.relabel_from not in INTENTS or self.relabel_to not in INTENTS
                                       or self.relabel_from == self.relabel_to):
            raise ValueError(f"relabel_from and relabel_to must be two different intents of {', '.join(INTENTS)}, "
                             f"got {self.relabel_from!r} and {self.relabel_to!r}")

    def active_on(self, day: dt.date) -> bool:
        return day >= self.start_day

    def to_dict(self) -> dict:
        """The ground-truth record: what changes, from when, and whom it should affect."""
        return {
            "name": self.name,
            "kind": self.kind,
            "first_day": self.start_day.isoformat(),
            "description": self.description,
            "intents": list(self.intents),
            "locales": list(self.locales),
            "rules": list(self.rules),
            "parameters": {name: getattr(self, name) for name in _PARAMETERS[self.kind]},
        }


def _check_known(field: str, values: tuple[str, ...], known: tuple[str, ...]) -> None:
    unknown = [v for v in values if v not in known]
    if unknown or not values:
        raise ValueError(f"{field} must be a non-empty subset of {', '.join(known)}; got {list(values)}")


_DEFAULT_AT = {"ui_rephrase": 0.40, "order_return_campaign": 0.55, "locale_growth": 0.70, "model_retrain": 0.85}


def default_scenarios(start: dt.date, days: int) -> list[Scenario]:
    """The standard drifts, at 40%, 55%, 70% and 85% of ``[start, start + days)``.

    Each starts on a distinct day with history before it, so a monitor has a
    baseline to detect the change against.

    Examples
    --------
    >>> [(s.name, s.start_day.isoformat()) for s in default_scenarios(dt.date(2026, 11, 1), 20)]
    [('ui_rephrase', '2026-11-09'), ('order_return_campaign', '2026-11-12'), ('locale_growth', '2026-11-15'), ('model_retrain', '2026-11-18')]
    """
    if days < 7:
        raise ValueError(f"default_scenarios needs at least 7 days to give each drift its own day, got {days}")
    at = {name: start + dt.timedelta(days=int(days * share)) for name, share in _DEFAULT_AT.items()}
    ot = "order_tracking"
    return [
        Scenario(
            name="ui_rephrase",
            kind="rephrase",
            start_day=at["ui_rephrase"],
            description=(
                "The app's new 'Package status' button: half of order-tracking queries now read "
                "'package status' / 'delivery status', which no order-tracking rule matches, "
                "so those rules fire less (coverage drops) while their agreement holds."
            ),
            intents=(ot,),
            rules=(
                f"{ot}.where_is_my_order",
                f"{ot}.order_status",
                f"{ot}.my_order",
                f"{ot}.ja_delivery_status",
                f"{ot}.es_where_is_my_order",
            ),
            phrasings="package_status",
            share=0.5,
        ),
        Scenario(
            name="order_return_campaign",
            kind="rephrase",
            start_day=at["order_return_campaign"],
            description=(
                "An 'Order & Return Week' campaign doubles return requests and half of them now say "
                "'return order status' / 'seguimiento del pedido de devolucion', so order-tracking "
                "rules without a 'return' veto fire on return requests and disagree with the model."
            ),
            intents=("return_request",),
            locales=("en-US", "es-ES"),
            rules=(f"{ot}.order_status", f"{ot}.my_order", f"{ot}.es_where_is_my_order"),
            phrasings="order_return_campaign",
            share=0.5,
            volume_factor=2.0,
        ),
        Scenario(
            name="locale_growth",
            kind="locale_growth",
            start_day=at["locale_growth"],
            description=(
                "Marketing launches in Spain: the es-ES share of traffic grows by one point a day "
                "(from 15% up to 35%), so es-ES rules fire more often."
            ),
            locales=("es-ES",),
            rules=(
                f"{ot}.es_where_is_my_order",
                "return_request.es_return",
                "escalation.es_agent",
                "recommendation.es_recommend",
                "product_question.es_stock",
                "faq.es_shipping_payment",
                "promotion.es_discount",
                "chitchat.es_greeting",
            ),
            share_per_day=0.01,
            max_share=0.35,
        ),
        Scenario(
            name="model_retrain",
            kind="model_retrain",
            start_day=at["model_retrain"],
            description=(
                "A retrained model (model-2) is less sure of itself: every confidence is pulled towards "
                "0.5 (logits times 0.6), and it labels a fifth of what model-1 called promotion as faq. "
                "The promotion rules did not change, yet their agreement drops: the nightly must see a "
                "model change, not a rule failure."
            ),
            intents=("promotion",),
            rules=("promotion.deals", "promotion.es_discount", "promotion.ja_coupon_sale"),
            confidence_scale=0.6,
            model_version="model-2",
            relabel_from="promotion",
            relabel_to="faq",
            relabel_share=0.2,
        ),
    ]


def write_ground_truth(scenarios: Sequence[Scenario], path: Path) -> Path:
    """Write the scenarios' ground truth as a JSON list, atomically, and return the path."""
    path = Path(path)
    records = [s.to_dict() for s in sorted(scenarios, key=lambda s: (s.start_day, s.name))]
    atomic_write(path, json.dumps({"scenarios": records}, indent=2, ensure_ascii=False) + "\n")
    return path


def locale_shares_on(day: dt.date, scenarios: Sequence[Scenario]) -> np.ndarray:
    """Share of each of :data:`LOCALES` on ``day``."""
    shares = np.array(LOCALE_SHARES, dtype=float)
    for s in scenarios:
        if s.kind != "locale_growth" or not s.active_on(day):
            continue
        grown = LOCALES.index(s.locales[0])
        # Day one of the scenario already carries one step, so the change is
        # visible from start_day and not before.
        target = min(shares[grown] + s.share_per_day * ((day - s.start_day).days + 1), s.max_share)
        others = np.arange(len(shares)) != grown
        shares[others] *= (1 - target) / shares[others].sum()
        shares[grown] = target
    return shares


def intent_shares_on(day: dt.date, scenarios: Sequence[Scenario]) -> np.ndarray:
    """Share of each of :data:`INTENTS` on ``day`` (the same in every locale)."""
    weights = np.array(INTENT_SHARES, dtype=float)
    for s in rephrasings_on(day, scenarios):
        for intent in s.intents:
            weights[INTENTS.index(intent)] *= s.volume_factor
    return weights / weights.sum()


def rephrasings_on(day: dt.date, scenarios: Sequence[Scenario]) -> list[Scenario]:
    """The rephrase scenarios active on ``day``, in the order given (later ones win overlaps)."""
    return [s for s in scenarios if s.kind == "rephrase" and s.active_on(day)]


def confidence_scale_on(day: dt.date, scenarios: Sequence[Scenario]) -> float:
    """Logit scale of the model's confidences on ``day`` (1.0 = unchanged)."""
    scale = 1.0
    for s in scenarios:
        if s.kind == "model_retrain" and s.active_on(day):
            scale *= s.confidence_scale
    return scale



def model_on(day: dt.date, scenarios: Sequence[Scenario]) -> tuple[str, list[Scenario]]:
    """The model_version labelling ``day`` (the newest started retrain's) and the retrains that relabel then."""
    started = sorted((s for s in scenarios if s.kind == "model_retrain" and s.active_on(day)),
                     key=lambda s: s.start_day)
    version = started[-1].model_version if started else BASE_MODEL_VERSION
    return version, [s for s in started if s.relabel_share > 0]
