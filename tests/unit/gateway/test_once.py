"""OncePer: one build per object however many subscribers ask, a new build for a new object."""

from gateway.once import OncePer


def test_builds_once_per_object_identity() -> None:
    calls: list[object] = []

    def build(key: object) -> str:
        calls.append(key)
        return f"built {len(calls)}"

    once = OncePer(build)
    first, equal_but_new = {"a": 1}, {"a": 1}
    assert {once(first) for _ in range(1000)} == {"built 1"}
    assert once(equal_but_new) == "built 2"
    assert once(first) == "built 3", "only the last object is remembered"
    assert len(calls) == 3
