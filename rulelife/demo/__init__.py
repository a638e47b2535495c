"""The example deployment end to end: the quickstart and the monitors' quality on simulated incidents."""
