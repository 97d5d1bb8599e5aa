"""cmd/events records ↔ accounts commands/events: lossless, checked by running the real engine."""

import random
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from engine.accounts import commands as c
from engine.accounts.events import CommandRejected, SettlementCompleted
from engine.codes import ResultCode
from engine.enums import Offset, OrderType, Side, TimeCondition, VolumeCondition
from engine.exchange import Exchange
from engine.instruments import InstrumentRegistry
from engine.matching.events import MatchingEvent
from ipc import records
from ipc.records import Flag, Kind
from services import config as cfg
from services.accounts_codec import (
    CHUNK_BYTES,
    MESSAGE_BYTES,
    CommandDecoder,
    UnsupportedRecord,
    commands_to_cmd,
    events_to_records,
    instrument_payload,
    records_to_events,
)
from services.matching_codec import events_to_execs, execs_to_events


def _registry() -> InstrumentRegistry:
    return cfg.load_instruments(cfg.load(env={}))


def _stream(seed: int, registry: InstrumentRegistry, n: int) -> list[Any]:
    """A seeded client session: accounts and money first, then orders, admin and settlement."""
    rng = random.Random(seed)
    instruments = list(registry)
    out: list[Any] = []
    request = iter(range(1, 10**9))
    for account in range(1, 5):
        out.append(c.OpenAccount(next(request), account, ts=1))
        out.append(c.Deposit(next(request), account, 10**12, 100 + account, "CNY", ts=2))
    for step in range(n):
        inst = rng.choice(instruments)
        account = rng.randint(1, 4)
        ts = 10 + step
        roll = rng.random()
        if roll < 0.65:
            out.append(
                c.SubmitOrder(
                    next(request),
                    account,
                    inst.index,
                    rng.choice([Side.BUY, Side.SELL]),
                    rng.choice([Offset.OPEN, Offset.OPEN, Offset.CLOSE]),
                    inst.pre_settlement + rng.randint(-3, 3),
                    rng.randint(1, 3),
                    rng.choice([OrderType.LIMIT, OrderType.LIMIT, OrderType.MARKET]),
                    rng.choice([TimeCondition.GFD, TimeCondition.GTC, TimeCondition.IOC]),
                    rng.choice([VolumeCondition.ANY, VolumeCondition.ALL]),
                    0,
                    ts,
                )
            )
        elif roll < 0.75:
            out.append(c.CancelOrder(next(request), account, rng.randint(1, step + 1), ts))
        elif roll < 0.83:
            price = inst.pre_settlement + rng.randint(-3, 3)
            out.append(c.AmendOrder(next(request), account, rng.randint(1, step + 1), price, 2, ts))
        elif roll < 0.87:
            out.append(
                c.Withdraw(next(request), account, rng.randint(1, 10**6), 5000 + step, "CNY", ts)
            )
        elif roll < 0.9:
            out.append(c.SetAccountFrozen(next(request), account, rng.random() < 0.3, ts))
        elif roll < 0.93:
            out.append(
                rng.choice([c.SuspendInstrument, c.ResumeInstrument])(next(request), inst.id, ts)
            )
        elif roll < 0.96:
            pairs = tuple((i.index, i.pre_settlement + rng.randint(-2, 2)) for i in instruments[:3])
            out.append(c.SetSettlementPrices(next(request), pairs, ts))
        elif roll < 0.98:
            out.append(c.SetSettlementPrice(next(request), inst.index, inst.pre_settlement, ts))
        else:
            out.append(c.ExecuteSettlement(next(request), 20250101 + step, ts))
    return out


def _index(registry: InstrumentRegistry) -> Any:
    return lambda instrument_id: registry.get(instrument_id).index  # type: ignore[union-attr]


def _name(registry: InstrumentRegistry) -> Any:
    return lambda index: registry.by_index(index).id


@pytest.mark.parametrize("seed", [11, 12])
def test_commands_through_cmd_records_run_the_engine_identically(seed: int) -> None:
    registry = _registry()
    commands = _stream(seed, registry, 300)
    cmd = commands_to_cmd(commands, _index(registry), source=1, first_seq=1, ts_init=5)
    assert cmd.dtype == records.CMD
    decoder = CommandDecoder(_name(registry))
    middle = len(cmd) // 2
    decoded = decoder.decode(cmd[:middle]) + decoder.decode(cmd[middle:])
    assert decoded == commands

    direct, via = Exchange(_registry()), Exchange(_registry())
    direct_events = [e for command in commands for e in direct.apply(command)]
    via_events = [e for command in decoded for e in via.apply(command)]
    assert via_events == direct_events
    assert via.state_hash() == direct.state_hash()

    accounts_events = [
        e
        for e in direct_events
        if not isinstance(e, MatchingEvent | SettlementCompleted)  # type: ignore[arg-type]
    ]
    batch = events_to_records(accounts_events, source=0, first_seq=1, ts_init=9)
    assert batch.dtype == records.EVENT and len(batch) == len(accounts_events)
    expected = [
        e._replace(message=_cut(e.message)) if isinstance(e, CommandRejected) else e
        for e in accounts_events
    ]
    assert records_to_events(batch) == expected
    # reads of a few mixed records take the decoder's small-batch path
    small = [
        e for start in range(0, len(batch), 5) for e in records_to_events(batch[start : start + 5])
    ]
    assert small == expected
    kinds = {Kind(k).name for k in np.unique(batch["kind"]).tolist()}
    assert {"COMMAND_ACCEPTED", "ORDER_UPDATED", "TRADE_BOOKED", "ACCOUNT_UPDATED"} <= kinds

    matching_events = [e for e in direct_events if isinstance(e, MatchingEvent)]  # type: ignore[arg-type]
    assert execs_to_events(events_to_execs(matching_events)) == matching_events


def _cut(message: str) -> str:
    return message.encode()[:MESSAGE_BYTES].decode("utf-8", "ignore")


def test_settlement_prices_span_records_until_the_last_flag() -> None:
    registry = _registry()
    command = c.SetSettlementPrices(7, ((0, 100), (1, 200), (2, 300)), ts=4)
    batch = commands_to_cmd([command], _index(registry))
    assert batch["kind"].tolist() == [Kind.SET_SETTLEMENT_PRICES] * 3
    assert batch["flags"].tolist() == [0, 0, Flag.LAST_IN_BATCH]
    decoder = CommandDecoder(_name(registry))
    assert decoder.decode(batch[:2]) == []
    assert decoder.decode(batch[2:]) == [command]


def test_answer_message_is_cut_on_a_character_boundary() -> None:
    long = "价格" * 40
    batch = events_to_records([CommandRejected(3, ResultCode.PRICE_OUT_OF_BAND, long, 1)])
    (event,) = records_to_events(batch)
    assert long.startswith(event.message) and len(event.message.encode()) <= MESSAGE_BYTES
    assert batch.view(records.EVENT_ANSWER)["request_id"][0] == 3
    assert batch["account"][0] == 0


TABLE = {
    "id": "TEST.LONG2601",
    "name": "期货 with a name long enough to take several records",
    "currency": "CNY",
    "multiplier": 10,
    "price_tick": Decimal("0.5"),
    "margin_rate": Decimal("0.12"),
    "commission": {"by": "rate", "open": "0.0001", "close": "0.0001", "close_today": "0"},
}


def _exactly(table: dict[str, Any]) -> dict[str, Any]:
    """The table as the decoder gives it back: decimals as their exact strings."""
    return {k: str(v) if isinstance(v, Decimal) else v for k, v in table.items()}


def test_an_instrument_table_travels_in_chunks_and_comes_back_exact() -> None:
    create = c.CreateInstrument(7, TABLE, ts=5)
    update = c.UpdateInstrument(8, "TEST.LONG2601", {"margin_rate": Decimal("0.2")}, ts=6)
    order = c.OpenAccount(9, 1, ts=7)
    batch = commands_to_cmd([create, order, update], lambda _id: 0, source=3)
    kinds = batch["kind"].tolist()
    chunks = kinds.count(Kind.INSTRUMENT_CREATE)
    assert chunks == -(-len(instrument_payload(create)) // CHUNK_BYTES) > 2
    assert kinds[chunks] == Kind.OPEN_ACCOUNT and kinds[-1] == Kind.INSTRUMENT_UPDATE
    assert batch["seq"].tolist() == list(range(1, len(batch) + 1))
    last = (batch["flags"] & Flag.LAST_IN_BATCH) != 0
    assert np.flatnonzero(last).tolist() == [chunks - 1, len(batch) - 1]
    decoder = CommandDecoder(lambda _index: "")
    decoded = decoder.decode(batch[:2]) + decoder.decode(batch[2:])  # split mid-table
    assert decoded == [
        c.CreateInstrument(7, _exactly(TABLE), 5),
        order,
        c.UpdateInstrument(8, "TEST.LONG2601", {"margin_rate": "0.2"}, 6),
    ]


def test_chunks_of_two_requests_interleaved_are_kept_apart_and_survive_a_checkpoint() -> None:
    one = commands_to_cmd([c.CreateInstrument(1, TABLE, 1)], lambda _id: 0)
    two = commands_to_cmd([c.CreateInstrument(2, {**TABLE, "id": "TEST.B"}, 2)], lambda _id: 0)
    decoder = CommandDecoder(lambda _index: "")
    assert decoder.decode(np.concatenate([one[:1], two[:1]])) == []
    restored = CommandDecoder(lambda _index: "")
    restored.pending_chunks = decoder.pending_chunks  # what the checkpoint keeps
    out = restored.decode(np.concatenate([two[1:], one[1:]]))
    assert [(command.request_id, command.fields["id"]) for command in out] == [
        (2, "TEST.B"),
        (1, "TEST.LONG2601"),
    ]
    assert restored.pending_chunks == []


def test_a_broken_table_is_answered_and_a_failed_batch_leaves_the_decoder_as_it_was() -> None:
    batch = commands_to_cmd([c.CreateInstrument(4, TABLE, 1)], lambda _id: 0)
    broken = batch.copy()
    broken.view(records.CMD_INSTRUMENT)["name"][0] = b"{not json"
    (answer,) = CommandDecoder(lambda _index: "").decode(broken)
    assert answer.request_id == 4 and answer.code is ResultCode.BAD_MESSAGE
    decoder = CommandDecoder(lambda _index: "")
    decoder.decode(batch[:1])
    held = decoder.pending_chunks
    bad = records.new_batch(records.CMD, 1)
    bad["kind"] = Kind.CANCEL_ALL
    with pytest.raises(UnsupportedRecord):
        decoder.decode(np.concatenate([batch[1:2], bad]))
    assert decoder.pending_chunks == held  # so the records can be decoded again one by one
    assert decoder.decode(batch[1:]) == [c.CreateInstrument(4, _exactly(TABLE), 1)]


def test_unsupported_kinds_are_refused_not_guessed() -> None:
    batch = records.new_batch(records.CMD, 1)
    batch["kind"] = Kind.CANCEL_ALL
    with pytest.raises(UnsupportedRecord):
        CommandDecoder(lambda _index: "").decode(batch)
