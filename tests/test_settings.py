"""Configuration: embedded defaults, a TOML file and environment variables, in that order of strength."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from recovery.settings import Settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("RECOVERY_") or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("RECOVERY_CONFIG", str(tmp_path / "absent.toml"))


def test_embedded_defaults_need_no_configuration() -> None:
    settings = Settings()
    assert settings.chain_names == ["ethereum", "bsc", "polygon"]
    assert settings.chain("ethereum").credited_assets == ["ETH", "USDT"]
    assert settings.chain("bsc").token_by_symbol("USDT").decimals == 18  # type: ignore[union-attr]
    assert settings.database_url and settings.database_url.startswith("sqlite:///")
    assert settings.seed_file == settings.data_dir / "signer-seed"
    assert settings.signer_mnemonic is None


def test_toml_file_then_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    toml = tmp_path / "recovery.toml"
    toml.write_text('api_port = 9100\nengineers = ["chen"]\n[fee]\npercent_bps = 250\nmin_usd = "5"\nmax_usd = "40"\n')
    monkeypatch.setenv("RECOVERY_CONFIG", str(toml))
    settings = Settings()
    assert settings.api_port == 9100
    assert [(e.name, e.tier, e.approval_limit_usd) for e in settings.engineers] == [("chen", "first_line", None)]
    assert settings.fee.percent_bps == 250 and settings.fee.min_usd == Decimal("5")

    monkeypatch.setenv("RECOVERY_API_PORT", "9200")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db/recovery")
    monkeypatch.setenv("RECOVERY_FEE__MAX_USD", "75")
    settings = Settings()
    assert settings.api_port == 9200
    assert settings.database_url == "postgresql://u@db/recovery"
    assert settings.fee.max_usd == Decimal("75")


def test_mnemonic_is_secret_in_reprs(monkeypatch: pytest.MonkeyPatch) -> None:
    words = "test test test test test test test test test test test junk"
    monkeypatch.setenv("RECOVERY_SIGNER_MNEMONIC", words)
    settings = Settings()
    assert settings.signer_mnemonic is not None
    assert settings.signer_mnemonic.get_secret_value() == words
    assert "junk" not in repr(settings) and "junk" not in settings.model_dump_json()


def test_duplicate_chain_names_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    chain = '{"name": "bsc", "chain_id": 56, "rpc_urls": ["http://127.0.0.1:1"]}'
    monkeypatch.setenv("RECOVERY_CHAINS", f"[{chain}, {chain}]")
    with pytest.raises(ValidationError, match="unique"):
        Settings()


def test_reconciliation_schedule_time(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (Settings().reconciliation.hour, Settings().reconciliation.time_zone) == (3, "UTC")
    monkeypatch.setenv("RECOVERY_RECONCILIATION__TIME_ZONE", "Europe/Malta")
    monkeypatch.setenv("RECOVERY_RECONCILIATION__HOUR", "5")
    assert (Settings().reconciliation.hour, Settings().reconciliation.time_zone) == (5, "Europe/Malta")
    monkeypatch.setenv("RECOVERY_RECONCILIATION__TIME_ZONE", "Mars/Olympus")
    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Olympus'"):
        Settings()
    monkeypatch.setenv("RECOVERY_RECONCILIATION__TIME_ZONE", "UTC")
    monkeypatch.setenv("RECOVERY_RECONCILIATION__HOUR", "24")
    with pytest.raises(ValidationError):
        Settings()
