from __future__ import annotations

import logging
import os
import pickle
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from eth_account import Account
from pydantic import SecretStr

from chains.endpoints import RpcError
from chains.evm import EvmChain
from chains.signer import GAS_WALLET_PATH, HOT_WALLET_PATH, HDSigner, Signer, deposit_path, load_or_create_seed
from devstack import devnet
from recovery.settings import ChainConfig, Settings
from tests.chain_fixtures import dev_chains  # noqa: F401  (fixture)


def settings_for(tmp_path: Path, mnemonic: str | None = None) -> Settings:
    secret = SecretStr(mnemonic) if mnemonic else None
    return Settings(data_dir=tmp_path, signer_mnemonic=secret, seed_file=tmp_path / "keys" / "seed")


def test_paths() -> None:
    assert deposit_path(0) == "m/44'/60'/0'/0/0" and deposit_path(17) == "m/44'/60'/0'/0/17"
    assert HOT_WALLET_PATH == "m/44'/60'/1'/0/0" and GAS_WALLET_PATH == "m/44'/60'/2'/0/0"
    with pytest.raises(ValueError):
        deposit_path(-1)


def test_seed_file_created_private_and_stable(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings = settings_for(tmp_path)
    first = HDSigner.from_settings(settings)
    seed = settings.seed_file
    assert seed is not None and seed.exists()
    assert stat.S_IMODE(seed.stat().st_mode) == 0o600
    assert stat.S_IMODE(seed.parent.stat().st_mode) & 0o077 == 0
    mnemonic = seed.read_text().strip()
    assert len(mnemonic.split()) == 12
    assert not [p for p in seed.parent.iterdir() if p != seed]  # no temporary file left behind
    # a restart reads the same seed: same addresses
    again = HDSigner.from_settings(settings_for(tmp_path))
    for path in (deposit_path(0), deposit_path(5), HOT_WALLET_PATH, GAS_WALLET_PATH):
        assert first.address(path) == again.address(path)
    assert len({first.address(p) for p in (deposit_path(0), HOT_WALLET_PATH, GAS_WALLET_PATH)}) == 3
    assert mnemonic not in caplog.text and mnemonic.split()[0] + " " + mnemonic.split()[1] not in caplog.text
    assert load_or_create_seed(seed) == mnemonic


def test_mnemonic_from_settings_matches_anvil_dev_accounts(tmp_path: Path) -> None:
    signer = HDSigner.from_settings(settings_for(tmp_path, devnet.DEV_MNEMONIC))
    assert signer.address(deposit_path(0)) == devnet.dev_account(0)
    assert signer.address(deposit_path(9)) == devnet.dev_account(9)
    assert not (tmp_path / "keys" / "seed").exists()


def test_no_secret_in_repr_str_or_pickle() -> None:
    _, mnemonic = Account.create_with_mnemonic()
    signer = HDSigner(mnemonic)
    signer.address(deposit_path(1))
    for text in (repr(signer), str(signer), f"{signer}", repr([signer])):
        assert mnemonic not in text
        assert not any(word in text.split() for word in mnemonic.split())
        assert "0x" not in text
    with pytest.raises(TypeError):
        pickle.dumps(signer)
    assert not hasattr(signer, "__dict__")
    assert isinstance(signer, Signer)


def test_invalid_mnemonic_is_not_echoed() -> None:
    bad = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima"
    with pytest.raises(ValueError) as info:
        HDSigner(bad)
    assert "alpha" not in str(info.value) and info.value.__cause__ is None


def test_signature_recovers_to_address() -> None:
    signer = HDSigner(Account.create_with_mnemonic()[1])
    path = deposit_path(2)
    tx = {
        "chainId": 56,
        "nonce": 0,
        "to": devnet.dev_account(3),
        "value": 10**15,
        "gas": 21_000,
        "maxFeePerGas": 3 * 10**9,
        "maxPriorityFeePerGas": 10**9,
    }
    raw, tx_hash = signer.sign_evm(path, tx)
    assert isinstance(raw, bytes) and tx_hash.startswith("0x") and len(tx_hash) == 66
    assert Account.recover_transaction(raw) == signer.address(path)
    assert Account.recover_transaction(raw) != signer.address(HOT_WALLET_PATH)


async def test_chain_id_1_tx_refused_by_chain_56(dev_chains: list[ChainConfig]) -> None:  # noqa: F811
    bsc = dev_chains[1]
    signer = HDSigner(Account.create_with_mnemonic()[1])
    path = deposit_path(0)
    sender = signer.address(path)
    await devnet.mint(bsc, asset="BNB", to=sender, amount=10**18)
    chain = EvmChain(bsc)
    max_fee, tip = await chain.fee_params()
    tx = {
        "chainId": 1,
        "nonce": await chain.nonce(sender),
        "to": devnet.dev_account(4),
        "value": 1,
        "gas": 21_000,
        "maxFeePerGas": max_fee,
        "maxPriorityFeePerGas": tip,
    }
    raw, tx_hash = signer.sign_evm(path, tx)
    with pytest.raises(RpcError, match="chain id"):
        await chain.send_raw(raw, tx_hash)
    assert await chain.receipt(tx_hash) is None
    raw, tx_hash = signer.sign_evm(path, tx | {"chainId": 56})
    assert await chain.send_raw(raw, tx_hash) == tx_hash
    assert (await chain.wait_receipt(tx_hash, timeout=timedelta(seconds=10)))["status"] == "0x1"


def test_existing_seed_is_kept(tmp_path: Path) -> None:
    _, mnemonic = Account.create_with_mnemonic()
    seed = tmp_path / "seed"
    fd = os.open(seed, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(mnemonic + "\n")
    assert load_or_create_seed(seed) == mnemonic
