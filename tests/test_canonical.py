"""The canonical JSON fast path must equal the rfc8785 package byte for byte."""

from __future__ import annotations

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from infoshare.signing import canonical

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53),
                    st.text(max_size=20),
                    st.floats(allow_nan=False, allow_infinity=False))
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5),
                            st.dictionaries(st.text(max_size=8), inner, max_size=5)),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(documents)
def test_fast_path_equals_rfc8785(document):
    try:
        expected = rfc8785.dumps(document)
    except Exception:  # rfc8785 refuses it (lone surrogates): so must we
        try:
            canonical.dumps(document)
        except Exception:
            return
        raise AssertionError("canonical accepted what rfc8785 refuses") from None
    assert canonical.dumps(document) == expected


def test_key_order_is_by_utf16_code_units():
    document = {"\U0001f600": 1, "\ufb01": 2, "a": 3}
    assert canonical.dumps(document) == rfc8785.dumps(document)
