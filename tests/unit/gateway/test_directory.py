"""The account directory: ids unique across gateways sharing one file, owners survive reloads."""

from pathlib import Path

from gateway.directory import AccountDirectory


def test_two_gateways_never_hand_out_the_same_id(tmp_path: Path) -> None:
    path = tmp_path / "accounts.jsonl"
    first, second = AccountDirectory(path), AccountDirectory(path)
    ids = [first.allocate(1, "a"), second.allocate(2, "b"), first.allocate(1, "c")]
    assert ids == [1, 2, 3]
    assert second.owner(3) == 1 and first.owner(2) == 2
    assert [e.account_id for e in second.accounts_of(1)] == [1, 3]


def test_released_ids_have_no_owner_and_are_not_reused(tmp_path: Path) -> None:
    directory = AccountDirectory(tmp_path / "accounts.jsonl")
    refused = directory.allocate(7, "x")
    directory.release(refused)
    assert directory.owner(refused) == 0
    assert directory.accounts_of(7) == []
    assert directory.allocate(7, "y") == refused + 1


def test_a_restarted_gateway_reads_the_owners_back(tmp_path: Path) -> None:
    path = tmp_path / "accounts.jsonl"
    AccountDirectory(path).allocate(5, "main")
    restarted = AccountDirectory(path)
    restarted.load()
    assert restarted.owner(1) == 5 and restarted.owner(2) is None
    assert restarted.entry(1) is not None and restarted.entry(1).name == "main"
