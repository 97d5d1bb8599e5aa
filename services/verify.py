"""`bin/exchange recover --verify` and the state hashes `bin/exchange up` prints.

Verification replays each journal from its first record through the processes' own start-up
code (`rebuild`, with no rings attached) and compares the state hash it reaches with the newest
checkpoint (replayed up to the checkpoint's sequence) and, when the process is running and
quiet, with the live state (replayed to the journal's end).
"""

from __future__ import annotations

import argparse
from typing import Any

from ipc.control import ControlError, call
from services import config as configuration
from services.accounts import CHECKPOINT, Accounts
from services.matching import Matching, checkpoint_name
from services.recovery import checkpoint_dir, journal_dir
from services.topology import matching_shards
from storage.checkpoint import latest_checkpoint
from storage.recovery import journal_last_seq


def live_hashes(config: configuration.Config) -> dict[str, str]:
    """The running processes' state hashes (absent processes are left out)."""
    out = {}
    for process in ["accounts", *(f"matching.{s}" for s in matching_shards(config))]:
        try:
            out[process] = str(call(config.control_endpoint(process), "state_hash", timeout=5.0))
        except ControlError:
            continue
    return out


def _status_journal_seq(config: configuration.Config, process: str) -> int | None:
    try:
        status = call(config.control_endpoint(process), "status", timeout=5.0)
    except ControlError:
        return None
    return int(status["service"]["journal_seq"])


def verify_process(
    config: configuration.Config, process: str, service: Any, checkpoint: str, journal: str
) -> list[str]:
    """Problems found for one process (empty: its journal, checkpoint and live state agree)."""
    problems = []
    directory = journal_dir(config, journal)
    last = journal_last_seq(directory)
    found = latest_checkpoint(checkpoint_dir(config), checkpoint)
    if found is not None:
        seq, payload = found
        replayed = service.rebuild(None, 0, until=seq)["state_hash"] if seq else None
        loaded = service.rebuild(payload, seq, until=seq)["state_hash"]
        if seq and replayed != loaded:
            problems.append(f"{process}: replay to {seq} gives {replayed}, checkpoint {loaded}")
        print(f"{process}: checkpoint at {seq}: {loaded} ({'ok' if not problems else 'DIFFERS'})")
    full = service.rebuild(None, 0)["state_hash"]
    print(f"{process}: full replay of {last} journal records: {full}")
    live_seq = _status_journal_seq(config, process)
    if live_seq is not None:
        live = live_hashes(config).get(process)
        if live_seq == last and live is not None:
            same = live == full
            print(f"{process}: live state {live} ({'ok' if same else 'DIFFERS'})")
            if not same:
                problems.append(f"{process}: live {live} != replay {full}")
        else:
            print(f"{process}: live state moved past the replay (busy); not compared")
    return problems


def cmd_recover(config: configuration.Config, args: argparse.Namespace) -> int:
    """Replay every journal from empty and compare with the checkpoints and the live state."""
    if not args.verify:
        print("bin/exchange recover: recovery runs on every start; use --verify to check it")
        return 2
    problems = verify_process(
        config, "accounts", Accounts(config, "accounts-verify"), CHECKPOINT, "accounts"
    )
    for shard in matching_shards(config):
        problems += verify_process(
            config,
            f"matching.{shard}",
            Matching(config, f"matching-verify-{shard}", shard),
            checkpoint_name(shard),
            f"matching-{shard}",
        )
    for problem in problems:
        print(f"MISMATCH {problem}")
    print("verify: ok" if not problems else f"verify: {len(problems)} mismatch(es)")
    return 0 if not problems else 1


def print_state_hashes(config: configuration.Config) -> None:
    """What `up` prints last: each stateful process's hash after its recovery."""
    for process, digest in live_hashes(config).items():
        print(f"state hash {process}: {digest}")
