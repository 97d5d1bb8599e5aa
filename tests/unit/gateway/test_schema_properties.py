"""Property: any JSON value given to any request schema parses or is refused with a code."""

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.codes import ResultCode
from gateway import requests
from gateway.errors import Rejected
from gateway.schema import Schema

SCHEMAS = [v for v in vars(requests).values() if isinstance(v, Schema)]

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def _objects_for(schema: Schema) -> st.SearchStrategy[dict]:
    names = st.sampled_from([f.name for f in schema.fields] or ["x"]) | st.text(max_size=8)
    return st.dictionaries(names, JSON, max_size=len(schema.fields) + 2)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_parse_never_crashes(data: st.DataObject) -> None:
    schema = data.draw(st.sampled_from(SCHEMAS))
    value = data.draw(_objects_for(schema) | JSON)
    try:
        parsed = schema.parse(value)
    except Rejected as refused:
        assert refused.code in (ResultCode.BAD_MESSAGE, ResultCode.BAD_ORDER_PARAMETER)
        assert refused.message
    else:
        assert set(parsed) == {f.name for f in schema.fields}
