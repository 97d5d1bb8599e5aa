"""RFC 7386 JSON Merge Patch: apply a patch, and compute the patch between two documents.

`null` deletes a key, objects merge recursively, anything else (arrays included) replaces.
`merge_into` mutates a snapshot in place (the DIFF session's hot path) and never aliases the
patch's objects into the target, so a patch may be shared by many sessions and queued safely.
"""

from __future__ import annotations

from typing import Any


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """The RFC 7386 MergePatch(target, patch), leaving both arguments untouched."""
    if not isinstance(patch, dict):
        return patch
    result: dict[str, Any] = _copy(target) if isinstance(target, dict) else {}
    merge_into(result, patch)
    return result


def merge_into(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """Apply an object patch to an object in place."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict):
            child = target.get(key)
            if not isinstance(child, dict):
                child = target[key] = {}
            merge_into(child, value)
        else:
            target[key] = value


def make_patch(old: Any, new: Any) -> Any:
    """The patch p with apply_merge_patch(old, p) == new.

    Exact whenever `new` holds no nulls inside objects (a merge patch cannot set a null).
    Returns an empty dict when nothing changed.
    """
    if not isinstance(old, dict) or not isinstance(new, dict):
        return _copy(new) if isinstance(new, dict) else new
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        if key not in old:
            patch[key] = _copy(value) if isinstance(value, dict) else value
        elif isinstance(value, dict) and isinstance(old[key], dict):
            child = make_patch(old[key], value)
            if child:
                patch[key] = child
        elif old[key] != value or type(old[key]) is not type(value):
            patch[key] = _copy(value) if isinstance(value, dict) else value
    return patch


def _copy(value: dict[str, Any]) -> dict[str, Any]:
    return {k: _copy(v) if isinstance(v, dict) else v for k, v in value.items()}
