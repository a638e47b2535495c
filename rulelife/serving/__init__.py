"""The request path: the bundle file, the runtime classifier, replay, publishing and rollback.

``bundle``, ``runtime`` and ``replay`` import no SQL, pandas or
great-expectations, so a chatbot service that embeds :class:`RuleClassifier`
pays only for the matcher. ``publish`` and ``rollback`` read the registry and
are imported only by the jobs and commands that publish or roll back.
"""
