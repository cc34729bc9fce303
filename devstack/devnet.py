"""Dev and test chains: anvil processes, a test ERC-20 placed at the configured token addresses, a faucet.

Everything here uses anvil-only methods (``anvil_*``) and anvil's public, unlocked dev accounts:
never point it at a real network.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import string
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path

from eth_utils import to_checksum_address

from chains.evm import EvmChain, build_erc20_transfer_data
from chains.evm_decode import hex_to_int
from chains.jsonrpc import JsonRpcClient
from recovery.settings import ROOT, ChainConfig

ANVIL_BIN = Path(
    os.environ.get("RECOVERY_ANVIL_BIN")
    or ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
)
TEST_TOKEN_SOURCE = Path(__file__).parent / "contracts" / "TestToken.vy"

DEV_MNEMONIC = "test test test test test test test test test test test junk"
"""Anvil's public dev mnemonic (m/44'/60'/0'/0/i). Publicly known: dev chains only."""
DEV_ACCOUNTS = (
    "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
    "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65",
    "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc",
    "0x976EA74026E726554dB657fA54763abd0C3a0aa9",
    "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955",
    "0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f",
    "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720",
)
FAUCET_ADDRESS = "0x000000000000000000000000000000000000FA0c"
"""Impersonated sender of faucet mints, so mints never disturb the dev accounts' nonces."""


def _private_files() -> None:
    """anvil's ``preexec_fn``: what it writes (its ``--state`` file) is readable by its owner only."""
    os.umask(0o077)


def dev_account(index: int = 0) -> str:
    """Address of anvil dev account ``index`` (unlocked on anvil: ``eth_sendTransaction`` works)."""
    return DEV_ACCOUNTS[index]


_LISTENING_RE = re.compile(r"Listening on ([0-9.]+):(\d+)")
_SAFE_TEXT_RE = re.compile(r"^[A-Za-z0-9 ._-]{1,32}$")
_compiled: dict[tuple[str, str, int], str] = {}


class PortInUse(RuntimeError):
    def __init__(self, port: int) -> None:
        super().__init__(f"port {port} is already in use (is another anvil running?)")
        self.port = port


class AnvilError(RuntimeError):
    pass


# --- test token -------------------------------------------------------------------------------


def _vyper_bin() -> str:
    sibling = Path(sys.executable).parent / "vyper"
    found = str(sibling) if sibling.exists() else shutil.which("vyper")
    if not found:
        raise AnvilError("vyper compiler not found (pip install vyper==0.4.3)")
    return found


def token_runtime_bytecode(symbol: str, decimals: int, name: str | None = None) -> str:
    """Runtime bytecode (0x hex) of the test token; compiled once per process per parameters."""
    name = name or f"Test {symbol}"
    if not (_SAFE_TEXT_RE.match(symbol) and _SAFE_TEXT_RE.match(name)) or not 0 <= decimals <= 77:
        raise ValueError(f"bad test token parameters: {name!r} {symbol!r} {decimals}")
    key = (name, symbol, decimals)
    if key not in _compiled:
        source = string.Template(TEST_TOKEN_SOURCE.read_text()).substitute(name=name, symbol=symbol, decimals=decimals)
        with tempfile.TemporaryDirectory(prefix="testtoken-") as tmp:
            src = Path(tmp) / "TestToken.vy"
            src.write_text(source)
            proc = subprocess.run(
                [_vyper_bin(), "-f", "bytecode_runtime", str(src)],
                capture_output=True,
                text=True,
                check=False,
            )
        if proc.returncode != 0:
            raise AnvilError(f"vyper failed: {proc.stderr.strip()[-2000:]}")
        _compiled[key] = proc.stdout.strip()
    return _compiled[key]


# --- anvil process ----------------------------------------------------------------------------


class Anvil:
    def __init__(
        self, proc: asyncio.subprocess.Process, host: str, port: int, chain_id: int, output: deque[str]
    ) -> None:
        self.proc = proc
        self.host = host
        self.port = port
        self.chain_id = chain_id
        self._output = output
        self._drain: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"Anvil(chain_id={self.chain_id}, url={self.url!r}, pid={self.proc.pid})"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def output(self) -> list[str]:
        """The last lines anvil printed, for debugging."""
        return list(self._output)

    @classmethod
    async def start(
        cls,
        *,
        chain_id: int,
        port: int = 0,
        block_time_s: int | None = 1,
        state_file: Path | None = None,
        host: str = "127.0.0.1",
        extra_args: Sequence[str] = (),
        startup_timeout: timedelta = timedelta(seconds=15),
    ) -> Anvil:
        """Start anvil. With ``block_time_s``, txs still mine at once and empty blocks keep coming."""
        if not ANVIL_BIN.exists():
            raise AnvilError(f"anvil not found at {ANVIL_BIN} (npm install @foundry-rs/anvil-linux-amd64)")
        args = [str(ANVIL_BIN), "--chain-id", str(chain_id), "--port", str(port), "--host", host]
        if block_time_s is not None:
            args += ["--block-time", str(block_time_s), "--mixed-mining"]
        if state_file is not None:
            Path(state_file).parent.mkdir(parents=True, exist_ok=True)
            args += ["--state", str(state_file)]
        args += list(extra_args)
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=_private_files,  # the --state file is the chain's database: 0600
        )
        output: deque[str] = deque(maxlen=200)
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(startup_timeout.total_seconds()):
                while True:
                    raw = await proc.stdout.readline()
                    if not raw:
                        await proc.wait()
                        text = "\n".join(output)
                        if "address already in use" in text.lower():
                            raise PortInUse(port)
                        raise AnvilError(f"anvil exited with code {proc.returncode}: {text[-2000:]}")
                    line = raw.decode(errors="replace").rstrip()
                    output.append(line)
                    match = _LISTENING_RE.search(line)
                    if match:
                        break
        except BaseException:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            raise
        anvil = cls(proc, match.group(1), int(match.group(2)), chain_id, output)
        # anvil logs every block and request: keep reading or it blocks on a full pipe.
        anvil._drain = asyncio.create_task(anvil._drain_output())
        return anvil

    async def _drain_output(self) -> None:
        assert self.proc.stdout is not None
        pending = b""
        while chunk := await self.proc.stdout.read(65536):
            *lines, pending = (pending + chunk).split(b"\n")
            pending = pending[-65536:]
            self._output.extend(line.decode(errors="replace").rstrip() for line in lines)

    async def stop(self, timeout: timedelta = timedelta(seconds=10)) -> None:
        """SIGTERM (anvil writes its ``--state`` file on the way out), then SIGKILL on timeout."""
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), timeout.total_seconds())
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._drain is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._drain, 2)

    async def __aenter__(self) -> Anvil:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


@contextlib.asynccontextmanager
async def dev_network(
    chains: Sequence[ChainConfig],
    *,
    ports: Sequence[int] | None = None,
    block_time_s: int | None = 1,
    state_dir: Path | None = None,
    fund: Sequence[str] = (),
) -> AsyncIterator[list[ChainConfig]]:
    """One anvil per chain, bootstrapped; yields the chains with ``rpc_urls`` pointed at them."""
    anvils: list[Anvil] = []
    try:
        for i, chain in enumerate(chains):
            state = state_dir / f"{chain.name}.json" if state_dir else None
            port = ports[i] if ports else 0
            anvils.append(
                await Anvil.start(chain_id=chain.chain_id, port=port, block_time_s=block_time_s, state_file=state)
            )
        ready = [c.model_copy(update={"rpc_urls": [a.url]}) for c, a in zip(chains, anvils, strict=True)]
        await asyncio.gather(*(bootstrap_chain(c, fund=list(fund)) for c in ready))
        yield ready
    finally:
        await asyncio.gather(*(a.stop() for a in anvils), return_exceptions=True)


# --- chain helpers ----------------------------------------------------------------------------


def _rpc(chain: ChainConfig) -> JsonRpcClient:
    return JsonRpcClient(chain.rpc_urls, name=chain.name)


async def install_token(
    chain: ChainConfig, address: str, *, symbol: str, decimals: int, name: str | None = None
) -> bool:
    """Place the test token's code at ``address`` unless code is already there. True if placed."""
    rpc = _rpc(chain)
    address = to_checksum_address(address)
    if (await rpc.call("eth_getCode", [address, "latest"])) not in ("0x", None, ""):
        return False
    code = await asyncio.to_thread(token_runtime_bytecode, symbol, decimals, name)
    await rpc.call("anvil_setCode", [address, code])
    return True


async def _top_up(rpc: JsonRpcClient, address: str, amount: int) -> None:
    if hex_to_int(await rpc.call("eth_getBalance", [address, "latest"])) < amount:
        await rpc.call("anvil_setBalance", [address, hex(amount)])


async def bootstrap_chain(chain: ChainConfig, *, fund: list[str], native_amount: int = 10**21) -> None:
    """Test tokens at the configured token addresses and native balances topped up to ``native_amount``.

    Idempotent, safe on a persisted chain: existing code is kept, balances are never lowered.
    """
    for token in chain.tokens:
        await install_token(chain, token.address, symbol=token.symbol, decimals=token.decimals)
    rpc = _rpc(chain)
    for address in fund:
        await _top_up(rpc, to_checksum_address(address), native_amount)


def _token_address(chain: ChainConfig, asset: str) -> str | None:
    """None for the native asset; a configured token by symbol; or any token by 0x address."""
    if asset == chain.native_symbol:
        return None
    token = chain.token_by_symbol(asset)
    if token is not None:
        return token.address
    if asset.startswith("0x") and len(asset) == 42:
        return to_checksum_address(asset)
    raise ValueError(f"unknown asset {asset!r} on {chain.name}")


async def _send_and_wait(chain: ChainConfig, tx: dict[str, str], *, require_success: bool) -> str:
    adapter = EvmChain(chain)
    tx_hash: str = await adapter.rpc.call("eth_sendTransaction", [tx])
    receipt = await adapter.wait_receipt(tx_hash, timeout=timedelta(seconds=30))
    if require_success and hex_to_int(receipt.get("status", "0x0")) != 1:
        raise AnvilError(f"{chain.name}: transaction {tx_hash} reverted")
    return tx_hash


async def mint(chain: ChainConfig, *, asset: str, to: str, amount: int) -> str:
    """Faucet. Returns the mint tx hash, or "" for the native asset (a balance change, no tx)."""
    to = to_checksum_address(to)
    token = _token_address(chain, asset)
    rpc = _rpc(chain)
    if token is None:
        current = hex_to_int(await rpc.call("eth_getBalance", [to, "latest"]))
        await rpc.call("anvil_setBalance", [to, hex(current + amount)])
        return ""
    await _top_up(rpc, FAUCET_ADDRESS, 10**20)
    await rpc.call("anvil_impersonateAccount", [FAUCET_ADDRESS])
    data = "0x40c10f19" + to[2:].lower().rjust(64, "0") + format(amount, "064x")  # mint(address,uint256)
    return await _send_and_wait(chain, {"from": FAUCET_ADDRESS, "to": token, "data": data}, require_success=True)


async def send_from_dev_account(
    chain: ChainConfig,
    *,
    to: str,
    asset: str,
    amount: int,
    account_index: int = 0,
    gas: int | None = None,
) -> str:
    """Play a user: send ``amount`` of ``asset`` from anvil dev account ``account_index``; return once mined.

    Pass ``gas`` to skip estimation, e.g. to mine a transfer that reverts.
    """
    sender = dev_account(account_index)
    token = _token_address(chain, asset)
    to = to_checksum_address(to)
    if token is None:
        tx = {"from": sender, "to": to, "value": hex(amount)}
    else:
        tx = {"from": sender, "to": token, "data": build_erc20_transfer_data(to, amount)}
    if gas is not None:
        tx["gas"] = hex(gas)
    return await _send_and_wait(chain, tx, require_success=False)


async def send_as(chain: ChainConfig, *, sender: str, to: str, asset: str, amount: int) -> str:
    """Send from any address, impersonated (with gas given to it): plays an engineer's recovery outside the
    engine, e.g. from a deposit address with keys recovered by hand. Returns once mined."""
    rpc = _rpc(chain)
    sender, to = to_checksum_address(sender), to_checksum_address(to)
    await _top_up(rpc, sender, 10**18)
    await rpc.call("anvil_impersonateAccount", [sender])
    token = _token_address(chain, asset)
    if token is None:
        tx = {"from": sender, "to": to, "value": hex(amount)}
    else:
        tx = {"from": sender, "to": token, "data": build_erc20_transfer_data(to, amount)}
    try:
        return await _send_and_wait(chain, tx, require_success=True)
    finally:
        await rpc.call("anvil_stopImpersonatingAccount", [sender])


async def mine(chain: ChainConfig, blocks: int = 1) -> None:
    await _rpc(chain).call("anvil_mine", [hex(blocks)])
