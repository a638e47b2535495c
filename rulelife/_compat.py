"""Work-arounds for third-party behaviour, each with the reason it exists."""

from __future__ import annotations

import contextlib
import io
import sys
import warnings
from collections.abc import Iterator

__all__ = ["quiet_pyspark_import"]


@contextlib.contextmanager
def quiet_pyspark_import() -> Iterator[None]:
    """Import code that may import pyspark (great-expectations does when it is installed).

    pyspark 4 decides it is "running doctests" when ``__main__`` has neither a
    spec nor a file and the session is not interactive — which is exactly
    ``python -c ...`` or a script piped to ``python -`` — and then calls
    ``sys.exit(0)`` on import: the process ends silently with success. We give
    ``__main__`` a placeholder ``__file__`` for the duration of the import, and
    keep pyspark's pandas-3 warning and doctest notes off the user's terminal.
    """
    main = sys.modules.get("__main__")
    patched = main is not None and getattr(main, "__spec__", None) is None and not hasattr(main, "__file__")
    if patched:
        main.__file__ = "<rulelife>"
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        if patched:
            del main.__file__
