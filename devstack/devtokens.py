"""Dev and test contracts beyond the test USDT: risky tokens and value forwarders, placed with ``anvil_setCode``.

The sources are in ``devstack/contracts/`` (Vyper, runtime bytecode only: no constructor, parameters are
compile-time ``${...}`` template constants). Anvil-only: never point this at a real network.

- ``FeeToken.vy``: keeps ``fee_bps`` of each transfer for ``fee_collector`` (fee-on-transfer).
- ``RebasingToken.vy``: shares times an index; ``rebase(numerator, denominator)`` moves every balance.
- ``BlacklistToken.vy``: ``addBlackList(a)`` makes a's transfers revert, ``freeze(a)`` makes them return false.
- ``Bytes32Token.vy``: ``symbol()`` returns bytes32 (old tokens like MKR).
- ``Forwarder.vy``, ``Splitter.vy``: forward or split the native value they receive (internal transfers).
"""

from __future__ import annotations

import asyncio
import re
import string
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector, is_address, to_checksum_address

from chains.jsonrpc import JsonRpcClient
from devstack.devnet import FAUCET_ADDRESS, AnvilError, _send_and_wait, _top_up, _vyper_bin
from recovery.settings import ChainConfig

CONTRACTS_DIR = Path(__file__).parent / "contracts"
_SAFE_TEXT_RE = re.compile(r"^[A-Za-z0-9 ._-]{1,32}$")
_SIGNATURE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\((.*)\)$")
_compiled: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
DEFAULT_FEE_COLLECTOR = "0x000000000000000000000000000000000000FEE5"


def _render_param(key: str, value: str | int | bool) -> str:
    """A template value as Vyper source text: ints as literals, addresses checksummed, safe text as is."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"contract parameter {key}={value}: negative")
        return str(value)
    if is_address(value):
        return to_checksum_address(value)
    if re.fullmatch(r"0x[0-9a-fA-F]{64}", value):
        return value  # bytes32 literal
    if not _SAFE_TEXT_RE.match(value):
        raise ValueError(f"contract parameter {key}={value!r}: use letters, digits, space, . _ -")
    return value


def contract_runtime_bytecode(source_name: str, **params: str | int | bool) -> str:
    """Runtime bytecode (0x hex) of ``devstack/contracts/<source_name>.vy`` with its ``${...}`` placeholders
    filled from ``params``; compiled once per process per parameters."""
    source_path = CONTRACTS_DIR / f"{source_name.removesuffix('.vy')}.vy"
    if not source_path.is_file():
        raise ValueError(f"no contract source {source_path.name} in {CONTRACTS_DIR}")
    rendered = {k: _render_param(k, v) for k, v in params.items()}
    key = (source_path.name, tuple(sorted(rendered.items())))
    if key not in _compiled:
        try:
            source = string.Template(source_path.read_text()).substitute(rendered)
        except KeyError as exc:
            raise ValueError(f"{source_path.name} needs parameter {exc.args[0]}") from exc
        with tempfile.TemporaryDirectory(prefix="devcontract-") as tmp:
            src = Path(tmp) / source_path.name
            src.write_text(source)
            proc = subprocess.run(
                [_vyper_bin(), "-f", "bytecode_runtime", str(src)], capture_output=True, text=True, check=False
            )
        if proc.returncode != 0:
            raise AnvilError(f"vyper failed on {source_path.name}: {proc.stderr.strip()[-2000:]}")
        _compiled[key] = proc.stdout.strip()
    return _compiled[key]


def _rpc(chain: ChainConfig) -> JsonRpcClient:
    return JsonRpcClient(chain.rpc_urls, name=chain.name)


async def install_contract(chain: ChainConfig, address: str, source_name: str, **params: str | int | bool) -> str:
    """Compile ``source_name`` with ``params`` and place its runtime code at ``address`` (replacing any code).

    Returns the checksummed address.
    """
    address = to_checksum_address(address)
    code = await asyncio.to_thread(contract_runtime_bytecode, source_name, **params)
    await _rpc(chain).call("anvil_setCode", [address, code])
    return address


def _token_params(symbol: str, decimals: int, name: str | None) -> dict[str, str | int | bool]:
    if not 0 <= decimals <= 77:
        raise ValueError(f"bad decimals {decimals}")
    return {"name": name or f"Test {symbol}", "symbol": symbol, "decimals": decimals}


async def install_fee_token(
    chain: ChainConfig,
    address: str,
    *,
    symbol: str = "FEE",
    decimals: int = 18,
    fee_bps: int = 100,
    fee_collector: str = DEFAULT_FEE_COLLECTOR,
    name: str | None = None,
) -> str:
    if not 0 <= fee_bps <= 10_000:
        raise ValueError(f"fee_bps {fee_bps} outside 0..10000")
    params = _token_params(symbol, decimals, name) | {"fee_bps": fee_bps, "fee_collector": fee_collector}
    return await install_contract(chain, address, "FeeToken", **params)


async def install_rebasing_token(
    chain: ChainConfig, address: str, *, symbol: str = "REB", decimals: int = 18, name: str | None = None
) -> str:
    return await install_contract(chain, address, "RebasingToken", **_token_params(symbol, decimals, name))


async def install_blacklist_token(
    chain: ChainConfig, address: str, *, symbol: str = "BLK", decimals: int = 6, name: str | None = None
) -> str:
    return await install_contract(chain, address, "BlacklistToken", **_token_params(symbol, decimals, name))


async def install_bytes32_token(chain: ChainConfig, address: str, *, symbol: str = "MKR", decimals: int = 18) -> str:
    if not re.fullmatch(r"[A-Za-z0-9]{1,32}", symbol):
        raise ValueError(f"bad symbol {symbol!r}")
    raw = "0x" + symbol.encode().ljust(32, b"\0").hex()
    return await install_contract(chain, address, "Bytes32Token", symbol_bytes32=raw, decimals=decimals)


def calldata(signature: str, *args: Any) -> str:
    """ABI-encoded call data for ``signature`` (e.g. ``"transfer(address,uint256)"``) and ``args``."""
    match = _SIGNATURE_RE.match(signature.replace(" ", ""))
    if not match:
        raise ValueError(f"not a function signature: {signature!r}")
    types = [t for t in match.group(1).split(",") if t]
    selector = function_signature_to_4byte_selector(signature.replace(" ", ""))
    return "0x" + selector.hex() + encode(types, list(args)).hex()


async def send_as(
    chain: ChainConfig,
    sender: str,
    to: str,
    data: str = "0x",
    *,
    value: int = 0,
    gas: int | None = None,
    require_success: bool = True,
) -> str:
    """Send a transaction from any address (impersonated, topped up with gas money); return once mined."""
    rpc = _rpc(chain)
    sender = to_checksum_address(sender)
    await _top_up(rpc, sender, 10**20 + value)
    await rpc.call("anvil_impersonateAccount", [sender])
    tx = {"from": sender, "to": to_checksum_address(to), "data": data, "value": hex(value)}
    if gas is not None:
        tx["gas"] = hex(gas)
    return await _send_and_wait(chain, tx, require_success=require_success)


async def mint_token(chain: ChainConfig, token: str, to: str, amount: int) -> str:
    """Call the dev token's open ``mint(to, amount)`` from the faucet address."""
    data = calldata("mint(address,uint256)", to_checksum_address(to), amount)
    return await send_as(chain, FAUCET_ADDRESS, token, data)


async def install_forwarder(chain: ChainConfig, address: str) -> str:
    return await install_contract(chain, address, "Forwarder")


async def install_splitter(chain: ChainConfig, address: str) -> str:
    return await install_contract(chain, address, "Splitter")
