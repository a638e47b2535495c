"""Fallback readiness: what the model would take back if the bundle were withdrawn today.

Rules that answer a large share of traffic are load-bearing: withdraw the
bundle (a bad publish, a rollback to nothing) and the model takes every one
of their calls back. How many, and how well it would answer them, is read
from the shadow sample, the rule-answered queries the model answered too.
"""

from __future__ import annotations

from dataclasses import dataclass

from rulelife.model.residual import ResidualReport, accuracy

__all__ = ["FallbackReadiness", "fallback_readiness"]


@dataclass(frozen=True)
class FallbackReadiness:
    days: int
    last_day: str | None
    calls_last_day: int  # calls the rules answered on the last day: what the model would take back
    calls_per_day: float  # ... on an average day of the window
    shadow_accuracy: dict  # the model against the true label on the shadow sample
    shadow_agreement: dict  # the model against the rules' answers on the shadow sample (no label needed)

    @property
    def expected_accuracy(self) -> dict:
        """The best estimate at hand: accuracy where labels exist, else agreement with the rules."""
        return self.shadow_accuracy if self.shadow_accuracy["n"] else self.shadow_agreement

    def line(self) -> str:
        """The report line."""
        if not self.days:
            return "fallback readiness: no traffic in the window"
        e = self.expected_accuracy
        basis = "accuracy on labelled shadow queries" if self.shadow_accuracy["n"] else "agreement with the rules"
        if not e["n"]:
            return (f"fallback readiness: without the bundle the model would take back {self.calls_last_day:,} calls "
                    f"a day ({self.last_day}); no shadow sample to say how well it would answer them")
        return (f"fallback readiness: without the bundle the model would take back {self.calls_last_day:,} calls a "
                f"day ({self.last_day}; {self.calls_per_day:,.0f} on average), expected {basis} "
                f"{e['accuracy']:.3f} (95% {e['low']:.3f}-{e['high']:.3f}, n={e['n']})")

    def check(self, floor: float) -> str | None:
        """None if the model's expected accuracy on the rules' calls is surely at least ``floor``, else why not.

        The interval's low end is held to the floor: a fallback plan rests on
        what the model surely does, not on its best guess.
        """
        e = self.expected_accuracy
        if not e["n"]:
            return f"no shadow sample: the model's accuracy on the rules' {self.calls_last_day:,} daily calls is unknown"
        if e["low"] < floor:
            return (f"the model's expected accuracy on the rules' calls is {e['accuracy']:.3f} (95% low {e['low']:.3f}), "
                    f"below the floor {floor:.3f}: the rules are load-bearing")
        return None

    def to_dict(self) -> dict:
        return {"days": self.days, "last_day": self.last_day, "calls_last_day": self.calls_last_day,
                "calls_per_day": self.calls_per_day, "shadow_accuracy": self.shadow_accuracy,
                "shadow_agreement": self.shadow_agreement, "line": self.line()}


def fallback_readiness(report: ResidualReport) -> FallbackReadiness:
    """Fallback readiness from the residual counts of a window (see the module docstring)."""
    days = report.days()
    t = report.totals()
    if days.empty:
        return FallbackReadiness(0, None, 0, 0.0, accuracy(0, 0), accuracy(0, 0))
    answered = days["queries"] - days["residual"]
    return FallbackReadiness(
        days=len(days), last_day=str(days["day"].iloc[-1]), calls_last_day=int(answered.iloc[-1]),
        calls_per_day=float(answered.mean()),
        shadow_accuracy=accuracy(t["shadow_correct"], t["shadow_labelled"]),
        shadow_agreement=accuracy(t["shadow_agree"], t["shadow"]),
    )
