"""Which rings and processes an instance has, derived from its configuration, in start order.

The whole pipeline is declared here, in one place (the exchange-core habit). Consumers start
before producers so that every reader is registered before the first record it must see is
written; `down` stops them in reverse order, so producers stop first and consumers drain.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

import numpy as np

from ipc import records
from services.config import Config

CATALOGUE: tuple[tuple[str, str], ...] = (
    ("recorder", "services.recorder"),
    ("marketdata", "services.marketdata"),
    ("matching", "services.matching"),
    ("accounts", "services.accounts"),
    ("gateway", "services.gateway"),
    ("feeds", "services.feeds"),
)
"""(kind of process, module) in start order."""


@dataclass(frozen=True)
class ProcessSpec:
    """One OS process to run: `python -m <module> --name <name> --shard <shard> ...`."""

    name: str
    module: str
    shard: int = 0


@dataclass(frozen=True)
class RingSpec:
    name: str  # without the instance prefix
    dtype: np.dtype[Any]
    capacity: int


def module_exists(module: str) -> bool:
    """True if the process module is importable (processes of later phases may not exist yet)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def matching_shards(config: Config) -> range:
    return range(int(config["matching"]["shards"]))


def gateway_ids(config: Config) -> range:
    return range(1, int(config["gateways"]["count"]) + 1)


def cmd_ids(config: Config) -> range:
    """Every cmd ring's id: the gateway processes' then the spare ones of direct clients."""
    gateways = config["gateways"]
    return range(1, int(gateways["count"]) + int(gateways["direct"]) + 1)


def direct_ids(config: Config) -> range:
    """The cmd ring ids that direct clients (`bin/loadgen --direct`) may write."""
    return range(int(config["gateways"]["count"]) + 1, cmd_ids(config).stop)


def processes(config: Config) -> list[ProcessSpec]:
    """The enabled processes whose modules exist, in start order."""
    out: list[ProcessSpec] = []
    for kind, module in CATALOGUE:
        if not config.enabled(kind) or not module_exists(module):
            continue
        if kind == "feeds" and not config["feeds"]["venues"]:
            continue  # no venue configured: nothing to run
        if kind == "matching":
            out.extend(ProcessSpec(f"matching.{s}", module, s) for s in matching_shards(config))
        elif kind == "gateway":
            out.extend(ProcessSpec(f"gateway.{g}", module, g) for g in gateway_ids(config))
        else:
            out.append(ProcessSpec(kind, module))
    return out


def rings(config: Config) -> list[RingSpec]:
    """Every ring of the instance: `cmd.<gateway>`, `orders.<shard>`, `execs.<shard>`,
    `events`, `md`."""
    capacity = config["rings"]
    out = [RingSpec(f"cmd.{g}", records.CMD, capacity["cmd"]) for g in cmd_ids(config)]
    for shard in matching_shards(config):
        out.append(RingSpec(f"orders.{shard}", records.ORDER, capacity["orders"]))
        out.append(RingSpec(f"execs.{shard}", records.EXEC, capacity["execs"]))
    out.append(RingSpec("events", records.EVENT, capacity["events"]))
    out.append(RingSpec("md", records.MD, capacity["md"]))
    return out


def execs_rings(config: Config) -> list[str]:
    """Every matching shard's report ring: what accounts, marketdata and recorder read."""
    return [f"execs.{shard}" for shard in matching_shards(config)]
