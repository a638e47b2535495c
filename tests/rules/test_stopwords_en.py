"""The project's English stop words are scikit-learn's, word for word (lint and mining results unchanged)."""

import pytest

from rulelife.rules.stopwords import stop_words_for
from rulelife.rules.stopwords_en import ENGLISH_STOP_WORDS


def test_the_list_is_scikit_learns():
    text = pytest.importorskip("sklearn.feature_extraction.text")
    assert ENGLISH_STOP_WORDS == frozenset(text.ENGLISH_STOP_WORDS)
    assert len(ENGLISH_STOP_WORDS) == 318


def test_english_lint_words_drop_the_customer_service_content_words():
    english = stop_words_for(["en-US"])
    assert {"the", "of", "whereupon"} <= english
    assert not {"bill", "call", "find", "empty"} & english  # content words a support bot keys on
    assert len(english) == 318 - 30


def test_no_project_module_imports_scikit_learn_for_words():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for path in [root / "rulelife" / "rules" / "stopwords.py", root / "miners" / "hard_negatives.py"]:
        names = {a.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ImportFrom)}
        assert not any(name and name.startswith("sklearn") for name in names), path
