"""One payload codec: the same value is the same bytes whether the API, the CLI, the client, a
workflow, the worker or the test kit encoded it."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sagaflow import codec, testing
from sagaflow.client import payload
from sagaflow.core.driver import encode_json

pytestmark = pytest.mark.unit

ENCODERS = {
    "client, API and CLI": payload,
    "worker (codec)": codec.dumps_payload,
    "workflow driver": encode_json,
    "test kit": testing.encode,
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(json_values)
def test_every_door_encodes_a_value_to_the_same_bytes(value: Any) -> None:
    encoded = {name: encode(value) for name, encode in ENCODERS.items()}
    assert len(set(encoded.values())) == 1, encoded
    assert codec.loads_payload(encoded["worker (codec)"]) == value


def test_the_encoding_is_the_frozen_one() -> None:
    # Recorded histories hold these bytes: compact, UTF-8, keys in the order given.
    assert payload({"b": 1, "a": "é"}) == '{"b":1,"a":"é"}'.encode()
