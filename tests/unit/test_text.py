"""features.text: a request's few ASCII descriptions are counted with Python's re, everything else with Arrow's
RE2 kernel; the two must give the same counts."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from features.text import LEXICONS, PYTHON_REGEX_MAX_ROWS, WORD, _counter, text_features

PATTERNS = [WORD, "!", *(pattern for pattern, _ in LEXICONS.values())]
# Pieces that make the patterns match, nearly match and meet at word boundaries.
PIECES = ["screenshot", "Screenshots", "order #", "order number", "tracking number", "find you", "doxxed",
          "n-word", "don't like", "dont like", "hate this", "HATE", "scammer", "fraudulent", "misrepresented",
          "never arrived", "empty box", "wrong card", "gun", "gunk", "kill", "nude", "late", "delayed", "idk",
          "#", "!", "'", "-", "_", "1", "x", " ", "  ", "\t", "\n", "\r", "\f", "\v", ".", ","]
ascii_text = st.lists(st.sampled_from(PIECES), max_size=12).map("".join)
any_text = st.lists(st.sampled_from([*PIECES, "\u017fcam", "\u212aill", "\u00a0", "\u2003", "é", "Ä"]),
                    max_size=10).map("".join)


def _arrow(arr: pa.Array, pattern: str) -> np.ndarray:
    ignore_case = pattern not in (WORD, "!")
    return pc.count_substring_regex(arr, pattern, ignore_case=ignore_case).to_numpy(zero_copy_only=False)


@settings(max_examples=300, deadline=None)
@given(st.lists(ascii_text, min_size=1, max_size=PYTHON_REGEX_MAX_ROWS))
def test_python_counts_of_ascii_text_equal_arrows(texts):
    arr = pa.array(texts, type=pa.large_string())
    count = _counter(arr)
    for pattern in PATTERNS:
        np.testing.assert_array_equal(count(pattern), _arrow(arr, pattern), err_msg=f"{pattern!r} on {texts!r}")


@settings(max_examples=200, deadline=None)
@given(st.lists(any_text, min_size=1, max_size=8))
def test_any_text_counts_as_arrow_counts_it_and_words_are_runs_of_non_whitespace(texts):
    """Non-ASCII text goes to Arrow; spelling out \\s did not change what a word is."""
    arr = pa.array(texts, type=pa.large_string())
    count = _counter(arr)
    for pattern in PATTERNS:
        np.testing.assert_array_equal(count(pattern), _arrow(arr, pattern), err_msg=f"{pattern!r} on {texts!r}")
    np.testing.assert_array_equal(_arrow(arr, WORD), _arrow(arr, r"\S+"))


def test_small_and_large_batches_give_the_same_features():
    texts = ["Screenshots attached!! he said he would FIND YOU", "never arrived, empty box", "", None,
             "\u017fcam and counterfeit", "idk, bad vibes"] * 20  # 120 rows: the Arrow path
    large = text_features(texts)
    for start in range(0, len(texts), 6):
        small = text_features(texts[start:start + 6])
        for name, values in small.items():
            np.testing.assert_array_equal(values, large[name][start:start + 6], err_msg=name)
