"""Building the recovery's EVM transactions: the sweep from the deposit address to the hot wallet (or a
refund to the sender and the fee to the hot wallet), and the gas top-up that pays for them. Pure but for the
gas estimate."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Protocol

from chains.evm import EvmChain, build_erc20_transfer_data
from recovery.models import Transfer

log = logging.getLogger(__name__)

SWEEP_GAS_FALLBACK = 100_000
NATIVE_TRANSFER_GAS = 21_000
GAS_HEADROOM_PCT = 120


class PendingSpend(Protocol):
    """What a signed, not yet mined transaction will spend from its sender."""

    gas_limit: int | None
    max_fee_per_gas: int | None
    value: int | None


async def sweep_gas_limit(chain: EvmChain, deposit: Transfer, *, hot_wallet: str) -> int:
    return await transfer_gas_limit(chain, deposit, to=hot_wallet, amount=deposit.amount)


async def transfer_gas_limit(chain: EvmChain, deposit: Transfer, *, to: str, amount: int) -> int:
    """Gas for moving ``amount`` of the deposit's asset from the deposit address: a plain transfer for the
    native coin, else the node's estimate with headroom (a fixed fallback when the estimate fails: it is
    advisory)."""
    if deposit.native:
        return NATIVE_TRANSFER_GAS
    assert deposit.token_address is not None
    try:
        estimate = await chain.estimate_gas(
            {"from": deposit.recipient, "to": deposit.token_address, "data": build_erc20_transfer_data(to, amount)}
        )
    except Exception as exc:  # noqa: BLE001 - an estimate is advisory; the fallback is safe
        log.warning("gas estimate failed on %s: %s; using %d", deposit.chain, exc, SWEEP_GAS_FALLBACK)
        return SWEEP_GAS_FALLBACK
    return estimate * GAS_HEADROOM_PCT // 100


def sweep_tx(deposit: Transfer, *, hot_wallet: str, gas: int, max_fee: int, tip: int) -> dict[str, Any]:
    """Everything of the deposit to the hot wallet; a native sweep pays its own gas out of the amount."""
    if deposit.native:
        amount = deposit.amount - gas * max_fee
        return transfer_tx(deposit, to=hot_wallet, amount=amount, gas=gas, max_fee=max_fee, tip=tip)
    return transfer_tx(deposit, to=hot_wallet, amount=deposit.amount, gas=gas, max_fee=max_fee, tip=tip)


def transfer_tx(deposit: Transfer, *, to: str, amount: int, gas: int, max_fee: int, tip: int) -> dict[str, Any]:
    """``amount`` of the deposit's asset from the deposit address to ``to`` (its gas is paid apart: from the
    address's native balance, topped up where it lacks it)."""
    common = {"gas": gas, "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip}
    if deposit.native:
        return {"to": to, "value": amount, **common}
    assert deposit.token_address is not None
    return {"to": deposit.token_address, "value": 0, "data": build_erc20_transfer_data(to, amount), **common}


def topup_needed(pending: Iterable[PendingSpend], balance: int) -> int:
    """Native coin the address lacks to pay for every transaction signed from it and not yet mined (not
    only one sweep: two deposits to one address can be recovered at once); 0 when it has enough."""
    needed = sum((tx.gas_limit or 0) * (tx.max_fee_per_gas or 0) + (tx.value or 0) for tx in pending)
    return max(needed - balance, 0)


def topup_tx(recipient: str, *, value: int, max_fee: int, tip: int) -> dict[str, Any]:
    return {
        "to": recipient,
        "value": value,
        "gas": NATIVE_TRANSFER_GAS,
        "maxFeePerGas": max_fee,
        "maxPriorityFeePerGas": tip,
    }
