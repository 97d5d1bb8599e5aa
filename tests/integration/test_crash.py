"""Crash recovery under load with real processes: SIGKILL accounts, matching or every process at
random moments, then check that nothing acknowledged was lost and nothing applied twice.

Rounds per mode: SHMEX_CRASH_ROUNDS (default 3 in sync mode; async runs a third of them, at
least one). A process crash loses nothing in either mode (async only widens the window of an
operating-system crash, which a test cannot produce), so both modes are held to the same bar:
every command answered exactly once and the final state equal to a clean replay.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

from engine.accounts.commands import AccountsCommand, Deposit
from ipc.control import ControlClient
from ipc.records import CMD, EVENT_ANSWER, Kind
from services.config import Config
from services.loadgen import DirectClient, LoadConfig, OrderStream
from storage.journal import iter_journal_arrays
from tests.integration.conftest import Exchange as Instance
from tests.integration.test_pipeline import (
    clean_replay,
    control,
    instance_config,
    live_hash,
    pipeline_config,
    setup_commands,
    start,
    wait_quiet,
)

ROUNDS = int(os.environ.get("SHMEX_CRASH_ROUNDS", "3"))
TARGETS = ("accounts", "matching.0", "all")
SAMPLE = 40
BACKLOG_CHUNKS = int(os.environ.get("SHMEX_BACKLOG_CHUNKS", "80"))
"""At most this many chunks of 200 orders are sent while `down` runs (the cmd ring holds 65,536)."""
"""Accepted orders looked up one by one (the state hash check covers all of them)."""


class Answers:
    """Every answer the client saw, counted per request id (a repeat would be a double apply)."""

    def __init__(self, client: DirectClient) -> None:
        self.client = client
        self.seen: Counter[int] = Counter()
        self.records: dict[int, Any] = {}

    def absorb(self, timeout: float = 0.0) -> None:
        batch = self.client.poll(timeout=timeout)
        answers = batch[np.isin(batch["kind"], (Kind.COMMAND_ACCEPTED, Kind.COMMAND_REJECTED))]
        for record in answers.view(EVENT_ANSWER):
            request = int(record["request_id"])
            self.seen[request] += 1
            self.records[request] = record

    def wait_all(self, requests: list[int], timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while any(r not in self.seen for r in requests):
            if time.monotonic() > deadline:
                missing = [r for r in requests if r not in self.seen]
                raise AssertionError(f"{len(missing)} commands never answered: {missing[:10]}")
            self.absorb(timeout=0.05)


def kill(instance: Instance, target: str) -> list[int]:
    """SIGKILL the target child process(es) of the supervisor; returns the pids killed."""
    supervisor = psutil.Process(instance.status()["supervisor_pid"])
    children = supervisor.children()
    pids = []
    for child in children:
        cmdline = child.cmdline()
        name = cmdline[cmdline.index("--name") + 1] if "--name" in cmdline else ""
        if target == "all" or name == target:
            child.send_signal(signal.SIGKILL)
            pids.append(child.pid)
    return pids


@dataclass
class Session:
    """A started pipeline instance and a direct client whose accounts are open and funded."""

    instance: Instance
    config: Config
    client: DirectClient
    answers: Answers
    accounts: list[int]
    sent: list[AccountsCommand]
    stream: OrderStream


@contextlib.contextmanager
def session(
    factory: Callable[..., Instance],
    tmp_path: Path,
    mode: str,
    rng: random.Random,
    more: str = "",
    **supervisor: str,
) -> Iterator[Session]:
    """`more`: config lines after the durability mode (its other keys, then other sections);
    `supervisor`: keys of the supervisor section."""
    config_file = pipeline_config(tmp_path, mode, **supervisor)
    text = config_file.read_text().replace(f'mode = "{mode}"', f'mode = "{mode}"\n{more}')
    config_file.write_text(text)
    instance = start(factory, config_file)
    config = instance_config(instance, config_file)
    with DirectClient(config) as client:
        answers = Answers(client)
        accounts = list(range(1, 9))
        sent: list[AccountsCommand] = setup_commands(client, accounts)
        client.send(sent)
        answers.wait_all([c.request_id for c in sent])
        assert client.registry is not None
        stream = OrderStream(client.registry, accounts, LoadConfig(seed=rng.randrange(1 << 30)))
        yield Session(instance, config, client, answers, accounts, sent, stream)


def burst(run: Session, chunks: int = 20) -> None:
    """Send `chunks` chunks of 100 orders at once, then read the answers already there."""
    for chunk in range(chunks):
        batch: list[AccountsCommand] = run.stream.next(run.client.request_ids(100), chunk + 5)
        run.client.send(batch)
        run.sent += batch
    run.answers.absorb(timeout=0.05)


def assert_exact(
    instance: Instance, config: Config, answers: Answers, sent: list[AccountsCommand]
) -> None:
    """Every command answered at most once, the live state that of a clean replay of them, and
    `recover --verify` agrees."""
    repeated = {r: n for r, n in answers.seen.items() if n > 1}
    assert not repeated, f"commands answered more than once: {list(repeated.items())[:10]}"
    assert live_hash(instance) == clean_replay(config, sent)
    verified = instance.run("recover", "--verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def kill_everything(instance: Instance) -> None:
    """SIGKILL every process of the instance, the supervisor last (the rings stay behind)."""
    supervisor = psutil.Process(instance.status()["supervisor_pid"])
    for child in supervisor.children():
        child.send_signal(signal.SIGKILL)
    supervisor.send_signal(signal.SIGKILL)
    supervisor.wait(timeout=10)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_killed_processes_lose_nothing_acknowledged(
    mode: str, exchange_factory: Callable[..., Instance], tmp_path: Path
) -> None:
    rounds = ROUNDS if mode == "sync" else max(1, ROUNDS // 3)
    rng = random.Random(f"crash-{mode}")
    with session(exchange_factory, tmp_path, mode, rng) as run:
        instance, config, client, answers = run.instance, run.config, run.client, run.answers
        accounts, sent, stream = run.accounts, run.sent, run.stream
        txn = 10_000
        for round_number in range(rounds):
            target = TARGETS[round_number % len(TARGETS)]
            delay = rng.uniform(0.05, 0.5)
            killer = threading.Timer(delay, kill, (instance, target))
            killer.start()
            try:
                for chunk in range(12):
                    batch: list[AccountsCommand] = stream.next(client.request_ids(40), chunk + 5)
                    request = client.request_ids(1)[0]
                    txn += 1
                    account = rng.choice(accounts)
                    batch.append(Deposit(request, account, 1_000_00, txn, "CNY", 6))
                    repeat = client.request_ids(1)[0]
                    batch.append(Deposit(repeat, account, 1_000_00, txn, "CNY", 7))
                    client.send(batch)
                    sent += batch
                    answers.absorb()
                    time.sleep(0.02)
            finally:
                killer.join()
            answers.wait_all([c.request_id for c in sent])
        kill_everything(instance)
        result = instance.run("up")
        assert result.returncode == 0, f"up after the crash failed:\n{result.stderr}"
        assert "state hash accounts" in result.stdout
        time.sleep(0.5)
        answers.absorb(timeout=0.2)
    repeated = {r: n for r, n in answers.seen.items() if n > 1}
    assert not repeated, f"commands answered more than once: {list(repeated.items())[:10]}"
    assert set(answers.seen) == {c.request_id for c in sent}
    wait_quiet(instance)
    accepted = [int(a["order_id"]) for a in answers.records.values() if int(a["order_id"])]
    with ControlClient(instance.endpoint("accounts"), timeout=10.0) as accounts_control:
        for order_id in rng.sample(accepted, min(SAMPLE, len(accepted))):
            assert accounts_control.request("order", order_id=order_id)["order_id"] == order_id
    assert live_hash(instance) == clean_replay(config, sent)
    verified = instance.run("recover", "--verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def journaled_requests(home: Path, gateway: int) -> dict[int, int]:
    """Request id → journal sequence of every command of `gateway` in the accounts journal."""
    out: dict[int, int] = {}
    for first, records in iter_journal_arrays(home / "journal" / "accounts", CMD):
        mine = np.flatnonzero(
            (records["source"] == gateway) & (records["kind"] // 100 == Kind.OPEN_ACCOUNT // 100)
        )
        out.update(zip(records["request_id"][mine].tolist(), (mine + first).tolist(), strict=True))
    return out


def test_sigkill_accounts_during_background_commits_answers_only_durable_commands(
    exchange_factory: Callable[..., Instance], tmp_path: Path
) -> None:
    """Bursts fast enough that accounts applies batches while the journal's sync thread commits
    earlier ones (the `commits.background` count of its status proves it), SIGKILL accounts in the
    middle of them: every answer the client saw was for a command the journal had already
    fsynced (its sequence <= `durable_seq` read after the answer), every command is answered
    exactly once after the restart, and the state equals a clean replay."""
    rng = random.Random("background-commits")
    background = 0
    with session(exchange_factory, tmp_path, "sync", rng) as run:
        instance, config, client, answers = run.instance, run.config, run.client, run.answers
        sent = run.sent
        for _round in range(ROUNDS):
            burst(run)
            status = control(instance, "accounts", "status")
            durable = status["service"]["durable_seq"]
            journaled = journaled_requests(instance.home, client.gateway_id)
            assert all(journaled[r] <= durable for r in answers.seen), "answered before fsync"
            background += status["service"]["commits"]["background"]
            kill(instance, "accounts")
            answers.wait_all([c.request_id for c in sent])
        assert background > 0, "accounts never committed in the background: the test missed"
    repeated = {r: n for r, n in answers.seen.items() if n > 1}
    assert not repeated, f"commands answered more than once: {list(repeated.items())[:10]}"
    wait_quiet(instance)
    assert live_hash(instance) == clean_replay(config, sent)


def down_while_sending(
    instance: Instance, client: DirectClient, answers: Answers, stream: OrderStream
) -> tuple[str, list[AccountsCommand]]:
    """`bin/exchange down` while the client keeps sending orders (up to BACKLOG_CHUNKS chunks
    of 200, one every 30 ms, like `bin/loadgen --direct` flat out), so every process stops with
    records in flight; returns what `down` printed and the commands sent."""
    sent: list[AccountsCommand] = []
    with subprocess.Popen(
        instance.command("down"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as down:
        try:
            for chunk in range(BACKLOG_CHUNKS):
                if down.poll() is not None:
                    break
                batch: list[AccountsCommand] = stream.next(client.request_ids(200), chunk + 5)
                client.send(batch)
                sent += batch
                answers.absorb()
                time.sleep(0.03)
            output = down.communicate(timeout=120)[0]
        finally:
            down.kill()
    assert down.returncode == 0, output
    return output, sent


@pytest.mark.parametrize("stop_timeout", ["0.3", "0.05"])
def test_down_with_a_backlog_then_up_resumes_exactly(
    stop_timeout: str, exchange_factory: Callable[..., Instance], tmp_path: Path
) -> None:
    """`down` while orders keep coming, with a stop timeout far too short to drain them (0.3 s:
    each process gives up its drain with records left in its rings; 0.05 s: the stop SIGKILLs
    them), then `up`, twice: `down` keeps the rings, every command is answered exactly once, no
    process crashes, and the state equals a clean replay (the failure it guards against: the
    rings removed with execs accounts never read, then "order N: open 1, matching 0")."""
    rng = random.Random(f"down-backlog-{stop_timeout}")
    with session(exchange_factory, tmp_path, "sync", rng, stop_timeout_s=stop_timeout) as run:
        instance, config, client, answers = run.instance, run.config, run.client, run.answers
        for round_number in range(2):
            output, sent = down_while_sending(instance, client, answers, run.stream)
            run.sent += sent
            assert "rings kept for the next `up`" in output, output
            up = instance.run("up")
            assert up.returncode == 0, f"up {round_number} after down failed:\n{up.stderr}"
            answers.wait_all([c.request_id for c in run.sent])
        wait_quiet(instance)
        restarted = [p["process"] for p in instance.status()["processes"] if p["restarts"]]
        assert not restarted, f"crashed after the restart: {restarted}"
        answers.absorb(timeout=0.2)
        repeated = {r: n for r, n in answers.seen.items() if n > 1}
        assert not repeated, f"commands answered more than once: {list(repeated.items())[:10]}"
        assert live_hash(instance) == clean_replay(config, run.sent)
    verified = instance.run("recover", "--verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_sigkill_matching_during_background_commits_loses_and_repeats_nothing(
    exchange_factory: Callable[..., Instance], tmp_path: Path
) -> None:
    """Matching's group commit: bursts fast enough that matching applies batches while its
    journal's sync thread commits earlier ones (its status's `commits.background` proves it),
    SIGKILL matching in the middle: its execs held for the fsync are regenerated by replay and
    written once, so accounts books every fill exactly once and the state of both equals a clean
    replay."""
    rng = random.Random("matching-background-commits")
    background = 0
    small_reads = "[wait]\nbatch = 32"  # accounts' group commits leave matching a backlog
    with session(exchange_factory, tmp_path, "sync", rng, more=small_reads) as run:
        instance, config, answers, sent = run.instance, run.config, run.answers, run.sent
        for _round in range(ROUNDS):
            burst(run)
            status = control(instance, "matching.0", "status")["service"]
            assert status["durable_seq"] <= status["journal_seq"]
            background += status["commits"]["background"]
            kill(instance, "matching.0")
            answers.wait_all([c.request_id for c in sent])
        assert background > 0, "matching never committed in the background: the test missed"
        wait_quiet(instance)
    assert_exact(instance, config, answers, sent)


def test_background_checkpoints_restore_the_state_a_replay_reaches(
    exchange_factory: Callable[..., Instance], tmp_path: Path
) -> None:
    """Checkpoints every second, written by forked children while the loops keep applying
    bursts: each names the journal position its state is at (`recover --verify` replays to it
    and compares), and after a SIGKILL of every child the restart from the newest one reaches
    the state of a clean replay."""
    rng = random.Random("background-checkpoints")
    with session(exchange_factory, tmp_path, "sync", rng, more="checkpoint_interval_s = 1") as run:
        instance, config, client, answers = run.instance, run.config, run.client, run.answers
        sent, stream = run.sent, run.stream
        deadline = time.monotonic() + 3.5
        chunk = 0
        while time.monotonic() < deadline:
            batch: list[AccountsCommand] = stream.next(client.request_ids(100), chunk % 20 + 5)
            client.send(batch)
            sent += batch
            answers.absorb(timeout=0.05)
            chunk += 1
        answers.wait_all([c.request_id for c in sent])
        for process in ("accounts", "matching.0"):
            written = control(instance, process, "status")["service"]["checkpoints"]
            assert written["background"] > 0 and not written["failed"], (process, written)
        wait_quiet(instance)
        restart_from_a_checkpoint(instance)
        wait_quiet(instance)
    assert_exact(instance, config, answers, sent)


def restart_from_a_checkpoint(instance: Instance) -> None:
    """SIGKILL every child, wait until the supervisor has restarted each, and check that
    accounts recovered from a checkpoint (not from the journal's start)."""
    kill(instance, "all")
    instance.wait_for(
        lambda: all(
            p["state"] == "running" and p["restarts"] for p in instance.status()["processes"]
        )
    )
    recovered = control(instance, "accounts", "status")["service"]["recovered"]
    assert recovered["checkpoint_seq"] > 0, recovered


def _checkpoints(instance: Instance, process: str) -> dict[str, int]:
    return control(instance, process, "status")["service"]["checkpoints"]


def test_failed_background_checkpoints_are_counted_and_the_restart_is_exact(
    exchange_factory: Callable[..., Instance], tmp_path: Path
) -> None:
    """The checkpoint directory replaced by a file (root ignores permissions, so this is how
    the write is made to fail): every checkpoint child fails, `status` counts it, the loops
    keep answering; with the directory back, a SIGKILL of every child restarts from the older
    checkpoint plus the journal, equal to a clean replay, and the next checkpoints succeed."""
    rng = random.Random("failed-checkpoints")
    with session(exchange_factory, tmp_path, "sync", rng, more="checkpoint_interval_s = 1") as run:
        instance, config, answers, sent = run.instance, run.config, run.answers, run.sent
        processes = ("accounts", "matching.0")
        burst(run, chunks=5)
        instance.wait_for(lambda: all(_checkpoints(instance, p)["background"] for p in processes))
        directory = instance.home / "checkpoints"
        aside = instance.home / "checkpoints.aside"
        directory.rename(aside)
        directory.write_text("not a directory\n")
        try:
            deadline = time.monotonic() + 30
            while not all(_checkpoints(instance, p)["failed"] for p in processes):
                assert time.monotonic() < deadline, "no checkpoint failed"
                burst(run, chunks=2)
                time.sleep(0.2)
            answers.wait_all([c.request_id for c in sent])  # the loops kept going
        finally:
            directory.unlink()
            aside.rename(directory)
        restart_from_a_checkpoint(instance)
        burst(run, chunks=5)
        answers.wait_all([c.request_id for c in sent])
        instance.wait_for(
            lambda: all(
                _checkpoints(instance, p)["background"] and not _checkpoints(instance, p)["failed"]
                for p in processes
            )
        )
        wait_quiet(instance)
    assert_exact(instance, config, answers, sent)


@pytest.mark.parametrize("stopped_child", [False, True])
def test_down_after_the_supervisor_was_sigkilled_then_up_resumes_exactly(
    stopped_child: bool, exchange_factory: Callable[..., Instance], tmp_path: Path
) -> None:
    """SIGKILL only the supervisor with orders in flight (its children get SIGTERM from the
    kernel and may still be stopping; with `stopped_child`, accounts is SIGSTOPped first so it
    outlives the supervisor for sure): `down` stops whatever is left from the pid files, keeps
    the rings when the stop was incomplete (else removes them), and the next `up` answers every
    command exactly once with the state of a clean replay."""
    rng = random.Random(f"supervisor-sigkilled-{stopped_child}")
    with session(exchange_factory, tmp_path, "sync", rng, stop_timeout_s="1") as run:
        instance, config, answers, sent = run.instance, run.config, run.answers, run.sent
        supervisor = psutil.Process(instance.status()["supervisor_pid"])
        accounts = instance.process("accounts")["pid"]
        burst(run, chunks=10)
        if stopped_child:
            os.kill(accounts, signal.SIGSTOP)
        supervisor.send_signal(signal.SIGKILL)
        supervisor.wait(timeout=10)
        down = instance.run("down")
        assert down.returncode == 0, down.stdout + down.stderr
        assert instance.processes() == []
        assert not list(instance.home.glob("*.pid"))
        segments = list(Path("/dev/shm").glob(f"{instance.prefix}.*"))
        if stopped_child:
            assert "killed leftover pids" in down.stdout and str(accounts) in down.stdout
            assert "accounts was killed after 1.0 s" in down.stdout, down.stdout
        kept = "rings kept for the next `up`" in down.stdout
        if kept:
            assert segments and (instance.home / "rings.kept").exists()
        else:
            assert segments == [], down.stdout
        up = instance.run("up")
        assert up.returncode == 0, up.stdout + up.stderr
        answers.wait_all([c.request_id for c in sent])
        if kept:  # the client is still attached to these rings (removed ones are a new epoch)
            burst(run, chunks=5)
            answers.wait_all([c.request_id for c in sent])
        wait_quiet(instance)
        restarted = [p["process"] for p in instance.status()["processes"] if p["restarts"]]
        assert not restarted, f"crashed after the restart: {restarted}"
    assert_exact(instance, config, answers, sent)
