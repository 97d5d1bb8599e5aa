"""RFC 7386 merge patch: every example of the RFC's appendix A, applied and round-tripped."""

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.diff.merge_patch import apply_merge_patch, make_patch, merge_into

RFC_7386_APPENDIX_A = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "result"), RFC_7386_APPENDIX_A)
def test_apply_matches_the_rfc_table(target: object, patch: object, result: object) -> None:
    before = copy.deepcopy((target, patch))
    assert apply_merge_patch(target, patch) == result
    assert (target, patch) == before, "apply must not mutate its arguments"


@pytest.mark.parametrize(("target", "patch", "result"), RFC_7386_APPENDIX_A)
def test_make_patch_round_trips(target: object, patch: object, result: object) -> None:
    assert apply_merge_patch(target, make_patch(target, result)) == result


def test_make_patch_of_equal_documents_is_empty() -> None:
    doc = {"quotes": {"SHFE.cu2501": {"last_price": 1.5, "volume": 3}}}
    assert make_patch(doc, copy.deepcopy(doc)) == {}


def test_make_patch_sends_only_changes_and_deletions() -> None:
    old = {"q": {"a": 1, "b": 2, "c": {"x": 1}}, "keep": True}
    new = {"q": {"a": 1, "b": 3, "d": 4}, "keep": True}
    assert make_patch(old, new) == {"q": {"b": 3, "c": None, "d": 4}}


def test_merge_into_never_aliases_the_patch() -> None:
    patch = {"orders": {"1": {"status": "ALIVE"}}}
    first: dict = {}
    second: dict = {}
    merge_into(first, patch)
    merge_into(second, patch)
    merge_into(first, {"orders": {"1": {"status": "FINISHED"}}})
    assert patch == {"orders": {"1": {"status": "ALIVE"}}}
    assert second["orders"]["1"]["status"] == "ALIVE"


_LEAF = st.none() | st.booleans() | st.integers() | st.text(max_size=4)
_DOCS = st.recursive(
    _LEAF.filter(lambda v: v is not None),
    lambda children: (
        st.dictionaries(st.text(max_size=3), children, max_size=4) | st.lists(_LEAF, max_size=3)
    ),
    max_leaves=15,
)


@settings(max_examples=200, deadline=None)
@given(old=_DOCS, new=_DOCS)
def test_make_patch_round_trips_any_null_free_documents(old: object, new: object) -> None:
    assert apply_merge_patch(old, make_patch(old, new)) == new


@settings(max_examples=200, deadline=None)
@given(target=_DOCS, patch=_DOCS | st.dictionaries(st.text(max_size=3), _LEAF, max_size=4))
def test_merge_into_agrees_with_apply(target: object, patch: object) -> None:
    if isinstance(target, dict) and isinstance(patch, dict):
        mutated = copy.deepcopy(target)
        merge_into(mutated, patch)
        assert mutated == apply_merge_patch(target, patch)
