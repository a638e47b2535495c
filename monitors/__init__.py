"""Monitors shipped with rulelife: pure functions of the daily metrics history.

Each is registered under the ``rulelife.monitors`` entry-point group by its
``name``; the nightly job loads them from there, never by import.
"""

from monitors.agreement_floor import AgreementFloor
from monitors.coverage_drift import CoverageDrift
from monitors.cusum import AgreementCusum
from monitors.expiry import Expiry
from monitors.safety_fp import SafetyFalsePositive

__all__ = ["AgreementCusum", "AgreementFloor", "CoverageDrift", "Expiry", "SafetyFalsePositive"]
