"""A rule: its definition, lifecycle states, normalisation, lint, the compiled matcher and the safety lexicon.

The bottom of the domain: nothing here touches the database, the log or the
bundle folder, so the request path and every batch job share it.
"""
