"""Is this rule version good enough to serve? Datasets, evaluation, the gate, promotion and log analysis."""
