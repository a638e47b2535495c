"""The request path: the bundle file, the runtime classifier, replay, and publishing.

``bundle``, ``runtime`` and ``replay`` import no SQL, pandas or
great-expectations, so a chatbot service that embeds :class:`RuleClassifier`
pays only for the matcher. ``publish`` reads the registry and is imported
only by the jobs that publish.
"""
