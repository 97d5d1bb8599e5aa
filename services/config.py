"""Configuration: built-in defaults < TOML file < environment (SHMEX_*) < command-line flags.

Every layer is checked against the defaults, so a misspelt key fails at start-up instead of
silently doing nothing; values from text layers (environment, `--set`) are converted to the
type of the default they override. Free-form tables (empty in the defaults, such as
`matching.assign`) accept any key.
"""

from __future__ import annotations

import argparse
import copy
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.accounts.risk import RiskConfig
from engine.instruments import InstrumentRegistry
from engine.money import rate_from_decimal
from ipc.control import control_endpoint
from storage.journal import Durability, JournalConfig

DEFAULTS_FILE = Path(__file__).with_name("defaults.toml")
INSTRUMENTS_FILE = Path(__file__).with_name("instruments.toml")
ENV_PREFIX = "SHMEX_"
_ENV_SHORTHANDS = {"SHMEX_PREFIX": ("instance", "prefix"), "SHMEX_HOME": ("instance", "home")}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(ValueError):
    """The configuration is invalid: an unknown key, a wrong type, an unreadable file."""


def _convert(text: str, default: Any, where: str) -> Any:
    """A text value (environment, --set) as the type of the default it overrides."""
    try:
        if isinstance(default, bool):
            lowered = text.strip().lower()
            if lowered not in _TRUE | _FALSE:
                raise ValueError(text)
            return lowered in _TRUE
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if isinstance(default, list):
            return [item.strip() for item in text.split(",") if item.strip()]
    except ValueError:
        raise ConfigError(f"{where}: {text!r} is not a {type(default).__name__}") from None
    return text


def _free_tables(tree: Mapping[str, Any], path: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Paths of the tables that are empty in the defaults: they take any key."""
    out: set[tuple[str, ...]] = set()
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out |= _free_tables(value, (*path, key)) if value else {(*path, key)}
    return out


def _merge(
    base: dict[str, Any],
    layer: Mapping[str, Any],
    where: str,
    free: set[tuple[str, ...]],
    path: tuple[str, ...] = (),
) -> None:
    """Merge `layer` into `base` in place, refusing keys and types the defaults do not have."""
    is_free = path in free
    for key, value in layer.items():
        dotted = ".".join((*path, key))
        if key not in base and not is_free:
            raise ConfigError(f"{where}: unknown setting {dotted!r}")
        current = base.get(key)
        if isinstance(current, dict):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where}: {dotted!r} must be a table")
            _merge(current, value, where, free, (*path, key))
        elif current is not None and not is_free and not _same_type(current, value):
            raise ConfigError(
                f"{where}: {dotted!r} must be {type(current).__name__}, got {value!r}"
            )
        else:
            base[key] = copy.deepcopy(value)


def _same_type(default: Any, value: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, int | float)
    return isinstance(value, type(default))


def _setting_paths(tree: Mapping[str, Any], path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The path of every non-table setting."""
    out: list[tuple[str, ...]] = []
    for key, value in tree.items():
        out.extend(
            _setting_paths(value, (*path, key)) if isinstance(value, Mapping) else [(*path, key)]
        )
    return out


def _set_dotted(
    tree: dict[str, Any], dotted: str, text: str, where: str, free: set[tuple[str, ...]]
) -> None:
    """Set one setting from text; inside a free table the rest of the name is one key
    (instrument ids have dots: `matching.assign.CFFEX.IF2501`)."""
    parts = dotted.split(".")
    node = tree
    for depth, part in enumerate(parts[:-1]):
        if tuple(parts[:depth]) in free:
            break
        child = node.get(part)
        if not isinstance(child, dict):
            raise ConfigError(f"{where}: unknown setting {dotted!r}")
        node = child
    else:
        depth = len(parts) - 1
    if tuple(parts[:depth]) in free:
        node[".".join(parts[depth:])] = _convert_free(text)
    elif parts[-1] in node and not isinstance(node[parts[-1]], dict):
        node[parts[-1]] = _convert(text, node[parts[-1]], f"{where} {dotted}")
    else:
        raise ConfigError(f"{where}: unknown setting {dotted!r}")


def _convert_free(text: str) -> Any:
    """A value for a free-form table: an int when it looks like one, else the text."""
    try:
        return int(text)
    except ValueError:
        return text


class Config:
    """The resolved settings of one instance. Read with `config["section"]["key"]`."""

    def __init__(self, tree: dict[str, Any], sources: list[str]) -> None:
        self._tree = tree
        self.sources = sources
        """The layers that built it, for `status` and logs."""

    def __getitem__(self, section: str) -> dict[str, Any]:
        return self._tree[section]

    def as_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self._tree)

    @property
    def prefix(self) -> str:
        return str(self._tree["instance"]["prefix"])

    @property
    def home(self) -> Path:
        """The run directory, absolute (`load` resolves the default `./var/<prefix>/`)."""
        return Path(self._tree["instance"]["home"])

    def ring_name(self, ring: str) -> str:
        """Shared-memory name of a ring of this instance: `<prefix>.<ring>`."""
        return f"{self.prefix}.{ring}"

    def control_endpoint(self, process: str) -> str:
        return control_endpoint(self.home, process)

    def enabled(self, process: str) -> bool:
        return process in self._tree["processes"]["enabled"]

    def shard_of(self, instrument_id: str) -> int:
        """The matching shard that owns an instrument (`matching.assign`, default 0)."""
        shard = int(self._tree["matching"]["assign"].get(instrument_id, 0))
        if not 0 <= shard < int(self._tree["matching"]["shards"]):
            raise ConfigError(f"matching.assign: {instrument_id} -> shard {shard} does not exist")
        return shard

    def instruments_file(self) -> Path:
        name = self._tree["instruments"]["file"]
        return Path(name).resolve() if name else INSTRUMENTS_FILE


def load(
    config_file: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> Config:
    """Build the configuration from the four layers.

    `overrides` are dotted keys from the command line (`{"ports.http": "8081"}`); `env`
    defaults to os.environ.
    """
    with DEFAULTS_FILE.open("rb") as handle:
        tree: dict[str, Any] = tomllib.load(handle)
    sources = [str(DEFAULTS_FILE)]
    free = _free_tables(tree)
    if config_file is not None:
        path = Path(config_file)
        try:
            with path.open("rb") as handle:
                layer = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from None
        _merge(tree, layer, str(path), free)
        sources.append(str(path.resolve()))
    environment = os.environ if env is None else env
    for setting in _setting_paths(tree):
        name = (ENV_PREFIX + "_".join(setting)).upper()
        if name in environment:
            _set_dotted(tree, ".".join(setting), environment[name], name, free)
            sources.append(name)
    for name, (section, key) in _ENV_SHORTHANDS.items():
        if name in environment:
            tree[section][key] = environment[name]
            sources.append(name)
    for dotted, text in (overrides or {}).items():
        _set_dotted(tree, dotted, text, "command line", free)
        sources.append(f"--set {dotted}")
    _validate(tree)
    home = tree["instance"]["home"]
    tree["instance"]["home"] = str(Path(home or Path("var") / tree["instance"]["prefix"]).resolve())
    return Config(tree, sources)


def _validate(tree: Mapping[str, Any]) -> None:
    prefix = tree["instance"]["prefix"]
    if "shmex" not in prefix or not all(ch.isalnum() or ch in "_-" for ch in prefix):
        raise ConfigError(
            f"instance.prefix {prefix!r}: must contain 'shmex' and only letters, digits, _ and -"
        )
    for ring, capacity in tree["rings"].items():
        if ring != "max_readers" and (capacity <= 0 or capacity & (capacity - 1)):
            raise ConfigError(f"rings.{ring} = {capacity}: capacity must be a power of two")
    if tree["durability"]["mode"] not in ("sync", "async"):
        raise ConfigError(f"durability.mode {tree['durability']['mode']!r}: sync or async")
    if tree["matching"]["shards"] < 1 or tree["gateways"]["count"] < 0:
        raise ConfigError("matching.shards must be >= 1 and gateways.count >= 0")


def add_arguments(parser: argparse.ArgumentParser, defaults: bool = True) -> None:
    """The flags every shmex command shares (the supervisor passes them on to its children).

    With `defaults=False` (for subcommands) an absent flag leaves the value parsed before it.
    """
    none: Any = None if defaults else argparse.SUPPRESS
    parser.add_argument("--config", type=Path, default=none, help="TOML file over the defaults")
    parser.add_argument("--prefix", default=none, help="instance name: ring prefix, run dir")
    parser.add_argument("--home", default=none, help="run directory (default ./var/<prefix>/)")
    parser.add_argument(
        "--set",
        action="append",
        default=[] if defaults else argparse.SUPPRESS,
        metavar="SECTION.KEY=VALUE",
        help="override one setting (repeatable)",
    )


def from_arguments(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Config:
    """The configuration for parsed `add_arguments` flags."""
    overrides: dict[str, str] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected SECTION.KEY=VALUE")
        overrides[key.strip()] = value
    if args.prefix is not None:
        overrides["instance.prefix"] = args.prefix
    if args.home is not None:
        overrides["instance.home"] = str(Path(args.home).resolve())
    return load(args.config, env, overrides)


def argument_list(config: Config, args: argparse.Namespace) -> list[str]:
    """Flags that rebuild the same configuration in a child process (same env inherited)."""
    out = ["--prefix", config.prefix, "--home", str(config.home)]
    if args.config is not None:
        out += ["--config", str(Path(args.config).resolve())]
    for item in args.set:
        out += ["--set", item]
    return out


def risk_config(config: Config) -> RiskConfig:
    """The accounts core's limits from the `[risk]` section (ratios as exact decimal strings)."""
    section = config["risk"]

    def ratio(key: str) -> int:
        value = rate_from_decimal(section[key])
        if value is None or value < 0:
            raise ConfigError(f'risk.{key} = {section[key]!r}: want a fraction like "0.95"')
        return value

    return RiskConfig(
        max_order_value=section["max_order_value"] or None,
        max_concentration_e8=ratio("max_concentration") or None,
        max_risk_ratio_e8=ratio("max_risk_ratio") or None,
        self_trade_check=section["self_trade_check"],
        liquidation_ratio_e8=ratio("liquidation_ratio"),
        intraday_liquidation=section["intraday_liquidation"],
    )


def journal_config(config: Config) -> JournalConfig:
    """The journal's settings from the `[durability]` section."""
    section = config["durability"]
    return JournalConfig(
        segment_bytes=section["segment_bytes"],
        durability=Durability(section["mode"]),
        flush_interval_ms=section["flush_interval_ms"],
    )


def load_instruments(config: Config) -> InstrumentRegistry:
    """The instrument registry from the configured TOML file (engine.instruments parses it)."""
    path = config.instruments_file()
    try:
        with path.open("rb") as handle:
            mapping = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return InstrumentRegistry.from_mapping(mapping)
