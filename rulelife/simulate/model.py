"""The reference intent model that the simulated chatbot calls.

It is a generative stand-in, not a classifier: for each query it draws a
confidence ``c`` from a Beta prior that depends on how clear the phrasing is,
then is right with probability exactly ``c``. That makes it calibrated by
construction (among rows with confidence about ``c``, a share ``c`` is
correct), which is what a well-trained production model with temperature
scaling looks like, and it lets a test check calibration with a tolerance a
person can reason about. When it is wrong it picks one of the phrasing's
plausible confusions (return_request ↔ order_tracking, escalation ↔ chitchat,
...), never a uniformly random intent.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "CLARITY_PRIORS",
    "TYPO_CLARITY_STEP",
    "calibration_error",
    "predict",
    "rescale_confidence",
]

# (mean, concentration) of the Beta prior on confidence per clarity level
# (clear, plain, vague). Canonical phrasings are near-certain: these are the
# queries keyword rules are written for, and a rule that agrees with the model
# on them 95% of the time must be possible. The mix of the shipped phrasings
# puts overall accuracy at about 92.5%.
CLARITY_PRIORS = ((0.985, 40.0), (0.80, 10.0), (0.60, 8.0))
# A typo makes the phrasing one level less clear for the model.
TYPO_CLARITY_STEP = 1
# A softmax over 8 intents is never below 1/8; keep a margin from 0 and 1 so
# logit rescaling stays finite.
_CONFIDENCE_RANGE = (0.2, 0.999)
# How often the model's wrong guess is the likelier of the phrasing's two confusions.
_FIRST_CONFUSION_SHARE = 0.7


def predict(
    rng: np.random.Generator,
    true_intent: np.ndarray,
    clarity: np.ndarray,
    confusions: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw the model's intent and confidence for each row.

    Parameters
    ----------
    rng
        Source of randomness (the caller seeds it).
    true_intent
        Intent index of each row.
    clarity
        Clarity level of each row's phrasing (0 clear, 1 plain, 2 vague).
    confusions
        ``(n, 2)`` intent indices the model picks from when it is wrong.

    Returns
    -------
    The predicted intent index and the confidence of each row.
    """
    n = len(true_intent)
    means = np.array([m for m, _ in CLARITY_PRIORS])[clarity]
    strength = np.array([k for _, k in CLARITY_PRIORS])[clarity]
    confidence = np.clip(rng.beta(means * strength, (1 - means) * strength), *_CONFIDENCE_RANGE)
    # Right with probability exactly the (clipped) confidence: calibration by construction.
    correct = rng.random(n) < confidence
    which = (rng.random(n) >= _FIRST_CONFUSION_SHARE).astype(np.int64)
    wrong = confusions[np.arange(n), which]
    predicted = np.where(correct, true_intent, wrong).astype(true_intent.dtype)
    return predicted, confidence


def rescale_confidence(confidence: np.ndarray, scale: float) -> np.ndarray:
    """Multiply the confidences' logits by ``scale`` (a retrained model's temperature).

    ``scale < 1`` pulls confidences towards 0.5 (a model that became less
    sure without becoming less accurate), ``scale > 1`` pushes them out.
    """
    logit = np.log(confidence / (1 - confidence))
    return 1 / (1 + np.exp(-scale * logit))


def calibration_error(confidence, correct, bins: int = 10) -> float:
    """Expected calibration error: the row-weighted mean |accuracy - confidence| over equal-width bins.

    Examples
    --------
    >>> round(calibration_error([0.9, 0.9, 0.6, 0.6], [True, False, True, True]), 2)
    0.4
    """
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=float)
    if confidence.size == 0:
        raise ValueError("calibration_error needs at least one row; pass non-empty arrays")
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    count = np.bincount(which, minlength=bins)
    gap = np.abs(
        np.bincount(which, weights=correct, minlength=bins) - np.bincount(which, weights=confidence, minlength=bins)
    )
    return float(gap.sum() / count.sum())
