"""Configuration layers: defaults < TOML file < environment < command line, with typo checks."""

import argparse
from pathlib import Path

import pytest

from services import config as cfg
from services.config import ConfigError


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exchange.toml"
    path.write_text(text)
    return path


def test_defaults_work_with_no_file_and_no_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = cfg.load(env={})
    assert config.prefix == "shmex"
    assert config["ports"]["http"] == 8080
    assert config["ports"]["md_pub"] == 5555
    assert config.home == tmp_path.resolve() / "var" / "shmex"
    assert config.ring_name("execs") == "shmex.execs"
    assert (
        config.control_endpoint("recorder") == f"ipc://{tmp_path.resolve()}/var/shmex/recorder.ctl"
    )


def test_each_layer_overrides_the_one_below(tmp_path: Path) -> None:
    path = _file(tmp_path, "[ports]\nhttp = 9000\nmd_pub = 9001\n[wait]\nspin_us = 5\n")
    env = {"SHMEX_PORTS_MD_PUB": "9101", "SHMEX_WAIT_SPIN_US": "7"}
    config = cfg.load(path, env=env, overrides={"wait.spin_us": "9"})
    assert config["ports"]["http"] == 9000  # file over default
    assert config["ports"]["md_pub"] == 9101  # env over file
    assert config["wait"]["spin_us"] == 9  # command line over env
    assert config["rings"]["execs"] == 262144  # default untouched
    assert config.sources[-1] == "--set wait.spin_us"


def test_prefix_and_home_from_env_shorthands_and_flags(tmp_path: Path) -> None:
    env = {"SHMEX_PREFIX": "shmex_env", "SHMEX_HOME": str(tmp_path / "h")}
    config = cfg.load(env=env)
    assert (config.prefix, config.home) == ("shmex_env", tmp_path / "h")
    parser = argparse.ArgumentParser()
    cfg.add_arguments(parser)
    args = parser.parse_args(["--prefix", "shmex_flag", "--home", str(tmp_path / "f")])
    config = cfg.from_arguments(args, env=env)
    assert (config.prefix, config.home) == ("shmex_flag", tmp_path / "f")


def test_child_argument_list_rebuilds_the_same_config(tmp_path: Path) -> None:
    path = _file(tmp_path, "[gateways]\ncount = 3\n")
    parser = argparse.ArgumentParser()
    cfg.add_arguments(parser)
    args = parser.parse_args(
        ["--config", str(path), "--prefix", "shmex_x", "--set", "ports.http=81"]
    )
    config = cfg.from_arguments(args, env={})
    child = cfg.from_arguments(parser.parse_args(cfg.argument_list(config, args)), env={})
    assert child.as_dict() == config.as_dict()
    assert child["gateways"]["count"] == 3 and child["ports"]["http"] == 81


def test_typos_and_wrong_types_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown setting 'ports\.htp'"):
        cfg.load(_file(tmp_path, "[ports]\nhtp = 1\n"), env={})
    with pytest.raises(ConfigError, match=r"'ports\.http' must be int"):
        cfg.load(_file(tmp_path, '[ports]\nhttp = "x"\n'), env={})
    with pytest.raises(ConfigError, match="SHMEX_PORTS_HTTP"):
        cfg.load(env={"SHMEX_PORTS_HTTP": "eighty"})
    with pytest.raises(ConfigError, match="unknown setting"):
        cfg.load(env={}, overrides={"nope.key": "1"})
    with pytest.raises(ConfigError, match="power of two"):
        cfg.load(env={}, overrides={"rings.execs": "1000"})
    with pytest.raises(ConfigError, match="must contain 'shmex'"):
        cfg.load(env={"SHMEX_PREFIX": "other"})
    with pytest.raises(ConfigError, match=r"exchange\.toml"):
        cfg.load(_file(tmp_path, "[ports\n"), env={})


def test_free_tables_take_any_key_and_shards_are_checked(tmp_path: Path) -> None:
    path = _file(tmp_path, '[matching]\nshards = 2\n[matching.assign]\n"CFFEX.IF2501" = 1\n')
    config = cfg.load(path, env={}, overrides={"matching.assign.SHFE.cu2501": "1"})
    assert config.shard_of("CFFEX.IF2501") == 1
    assert config.shard_of("CFFEX.IC2501") == 0
    bad = cfg.load(env={}, overrides={"matching.assign.X.Y": "5"})
    with pytest.raises(ConfigError, match="shard 5"):
        bad.shard_of("X.Y")


def test_lists_and_bools_from_text() -> None:
    config = cfg.load(env={"SHMEX_PROCESSES_ENABLED": "recorder, matching"})
    assert config["processes"]["enabled"] == ["recorder", "matching"]
    assert config.enabled("recorder") and not config.enabled("gateway")


def test_instruments_load_through_the_engine_registry() -> None:
    registry = cfg.load_instruments(cfg.load(env={}))
    assert "CFFEX.IF2501" in registry


def test_risk_section_becomes_the_engine_risk_config() -> None:
    risk = cfg.risk_config(cfg.load(env={}, overrides={"risk.max_concentration": "0"}))
    assert risk.max_risk_ratio_e8 == 95_000_000
    assert risk.max_concentration_e8 is None
    assert risk.liquidation_ratio_e8 == 100_000_000
    with pytest.raises(ConfigError, match="max_risk_ratio"):
        cfg.risk_config(cfg.load(env={"SHMEX_RISK_MAX_RISK_RATIO": "0.123456789"}))


def test_durability_section_becomes_the_journal_config() -> None:
    journal = cfg.journal_config(cfg.load(env={"SHMEX_DURABILITY_MODE": "async"}))
    assert (journal.durability.value, journal.flush_interval_ms) == ("async", 5)
    with pytest.raises(ConfigError, match=r"durability\.mode"):
        cfg.load(env={"SHMEX_DURABILITY_MODE": "maybe"})
