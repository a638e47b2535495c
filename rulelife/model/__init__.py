"""The model's side of the loop: what the rules change for the intent model.

Residual baseline (:mod:`~rulelife.model.residual`, :mod:`~rulelife.model.baseline`),
training-mix export (:mod:`~rulelife.model.training_mix`), candidate comparison
(:mod:`~rulelife.model.compare`) and fallback readiness (:mod:`~rulelife.model.fallback`);
:mod:`~rulelife.model.run` runs them over a workspace's log.
"""
