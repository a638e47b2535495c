"""The miner contract's workspace glue: read the log window, run the miners, write and register candidates."""

__all__ = ["MIN_CONFIDENCE"]

# The model confidence that makes a prediction a miner's seed. One point on a
# moving curve: a retrained model is calibrated differently, and
# `rulelife calibration` reports the threshold that keeps the precision this
# one had on the reference model version.
MIN_CONFIDENCE = 0.95
