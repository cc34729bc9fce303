"""``python -m devstack.screenshots``: the screenshots of the engineers' guide (docs/engineers.md), taken
from the real Temporal Web UI.

It starts its own dev stack on free ports in a temporary directory (a running ``make run`` is left
alone), opens realistic manual cases through the API as a user would (bsc USDT deposits to an address
the exchange credits USDT for on Ethereum only: a wrong-network deposit the exchange holds the key
for, above the automatic limit), has engineers act on them through the ``recovery`` CLI, then runs
``devstack/ui_capture.mjs`` (npm ``playwright-core`` driving Debian's headless ``/usr/bin/chromium``)
against the stack's Web UI. Nothing here is needed to run the engine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from devstack import devnet
from devstack.stack import DevStack, StackError, child_env, free_port_settings
from recovery.settings import ROOT, Settings

CHROMIUM = Path("/usr/bin/chromium")
CAPTURE_SCRIPT = Path(__file__).with_name("ui_capture.mjs")
PLAYWRIGHT = ROOT / "node_modules" / "playwright-core"
DEFAULT_OUT = ROOT / "docs" / "img"
CHAIN = "bsc"
ASSET = "USDT"
CASE_WAIT_S = 120.0
CAPTURE_TIMEOUT_S = 300.0

log = logging.getLogger("screenshots")


class ScreenshotError(Exception):
    """A failure with a message for the person at the terminal."""


@dataclass(frozen=True)
class DemoCase:
    """A case the tool opens: who deposits how much, and which engineers act on it."""

    key: str
    user_id: str
    amount: Decimal
    assign_to: str
    approve_by: str | None = None
    note: str = ""


DEMO_CASES = (
    DemoCase("four_eyes", "whale-7", Decimal("60000"), assign_to="bob", approve_by="bob", note="KYC and sender ok"),
    DemoCase("single", "trader-42", Decimal("25000"), assign_to="bob"),
    DemoCase("other", "maker-3", Decimal("32000"), assign_to="chen"),
)
"""60,000 USD is above the dev four-eyes threshold (50,000): bob's approval is the first of two. The other
two need one approval (above the automatic limit of 20,000, below four-eyes)."""


@dataclass
class Opened:
    case: DemoCase
    token: str
    case_id: str = ""


def check_tools() -> None:
    """The browser and its driver must be installed; say how when they are not."""
    if not CHROMIUM.exists():
        raise ScreenshotError(
            f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y --no-install-recommends chromium)"
        )
    if not (PLAYWRIGHT / "package.json").exists():
        raise ScreenshotError(f"{PLAYWRIGHT} not found: run `make install` (npm installs playwright-core)")
    if shutil.which("node") is None:
        raise ScreenshotError("node not found on PATH: install Node.js (npm comes with it)")


def recovery_cli(settings: Settings, *args: str) -> dict[str, Any]:
    """Run ``recovery ARGS`` against the stack (as an engineer would) and return its JSON output."""
    argv = [sys.executable, "-m", "cli", *args]
    done = subprocess.run(argv, env=child_env(settings), capture_output=True, text=True, timeout=120, cwd=ROOT)
    if done.returncode != 0:
        raise ScreenshotError(f"`recovery {' '.join(args)}` failed ({done.returncode}): {done.stderr.strip()}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


async def deposit(settings: Settings, address: str, amount: Decimal) -> str:
    """The user's own wallet (an anvil dev account) sends USDT on bsc to their exchange deposit address."""
    chain = settings.chain(CHAIN)
    token = chain.token_by_symbol(ASSET)
    if token is None:
        raise ScreenshotError(f"no {ASSET} token configured on {CHAIN}")
    units = int(amount.scaleb(token.decimals))
    await devnet.mint(chain, asset=ASSET, to=devnet.dev_account(0), amount=units)
    return await devnet.send_from_dev_account(chain, to=address, asset=ASSET, amount=units)


async def wait_awaiting_approval(http: httpx.AsyncClient, opened: Opened) -> dict[str, Any]:
    deadline = time.monotonic() + CASE_WAIT_S
    headers = {"Authorization": f"Bearer {opened.token}"}
    while True:
        response = await http.get(f"/v1/cases/{opened.case_id}", headers=headers)
        response.raise_for_status()
        case: dict[str, Any] = response.json()
        if case["status"] == "AWAITING_APPROVAL":
            return case
        if case["status"] in ("COMPLETED", "REJECTED", "EXPIRED", "CANCELLED") or time.monotonic() > deadline:
            raise ScreenshotError(f"case {opened.case_id} is {case['status']}, not AWAITING_APPROVAL: {case}")
        await asyncio.sleep(0.5)


async def open_cases(stack: DevStack) -> dict[str, str]:
    """Open the demo cases and let the engineers act; returns case ids by :attr:`DemoCase.key`."""
    settings = stack.settings
    opened: list[Opened] = []
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as http:
        for demo in DEMO_CASES:
            user = await asyncio.to_thread(recovery_cli, settings, "users", "create", "--user-id", demo.user_id)
            tx_hash = await deposit(settings, user["deposit_address"], demo.amount)
            item = Opened(demo, user["api_token"])
            response = await http.post(
                "/v1/cases",
                json={"chain": CHAIN, "tx_hash": tx_hash},
                headers={"Authorization": f"Bearer {item.token}"},
            )
            if response.status_code != 201:
                raise ScreenshotError(f"claim of {demo.user_id} answered {response.status_code}: {response.text}")
            item.case_id = response.json()["case_id"]
            opened.append(item)
            log.info("%s deposited %s %s on %s: case %s", demo.user_id, demo.amount, ASSET, CHAIN, item.case_id)
        for item in opened:
            case = await wait_awaiting_approval(http, item)
            log.info("case %s awaits approval (%s)", item.case_id, case["pattern"])
    for item in opened:
        demo = item.case
        engineer = "alice"  # the first line triages and hands over
        await asyncio.to_thread(
            recovery_cli, settings, "case", "assign", item.case_id, "--engineer", engineer, "--to", demo.assign_to
        )
        log.info("%s assigned case %s to %s", engineer, item.case_id, demo.assign_to)
        if demo.approve_by:
            answer = await asyncio.to_thread(
                recovery_cli,
                settings,
                "case",
                "approve",
                item.case_id,
                "--engineer",
                demo.approve_by,
                "--note",
                demo.note,
            )
            log.info("case %s: %s", item.case_id, answer["answer"])
    return {item.case.key: item.case_id for item in opened}


@dataclass
class CapturePlan:
    """What ``ui_capture.mjs`` reads from its one argument (JSON)."""

    ui_url: str
    namespace: str
    out_dir: str
    cases: dict[str, str]
    chromium: str = str(CHROMIUM)


def capture(plan: CapturePlan) -> None:
    argv = ["node", str(CAPTURE_SCRIPT), json.dumps(asdict(plan))]
    done = subprocess.run(argv, cwd=ROOT, timeout=CAPTURE_TIMEOUT_S)  # its progress goes to the terminal
    if done.returncode != 0:
        raise ScreenshotError(f"{CAPTURE_SCRIPT.name} failed (exit {done.returncode}): see its output above")


async def until_signal() -> None:
    """Return on SIGINT or SIGTERM (a background job ignores SIGINT: ``kill PID`` stops it cleanly)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def run(out_dir: Path, *, startup_timeout: float, keep_data: bool, hold: bool = False) -> list[Path]:
    check_tools()
    data_dir = Path(tempfile.mkdtemp(prefix="ui-screenshots-"))
    settings = free_port_settings(data_dir)
    stack = DevStack(settings, startup_timeout=startup_timeout, with_scanners=False)
    try:
        log.info("starting a dev stack on free ports (Temporal %s, UI %s), data in %s",
                 settings.temporal_address, stack.ui_url, data_dir)  # fmt: skip
        await stack.start()
        cases = await open_cases(stack)
        out_dir.mkdir(parents=True, exist_ok=True)
        plan = CapturePlan(stack.ui_url, settings.temporal_namespace, str(out_dir.resolve()), cases)
        log.info("capturing the Web UI at %s into %s", stack.ui_url, out_dir)
        await asyncio.to_thread(capture, plan)
        if hold:
            log.info("holding the stack: Web UI at %s, cases %s; Ctrl-C stops it", stack.ui_url, cases)
            await until_signal()
    finally:
        await stack.stop()
        if keep_data:
            log.info("kept %s (logs in %s)", data_dir, stack.log_dir)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    return sorted(out_dir.glob("*.png"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.screenshots",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"where the PNGs go (default {DEFAULT_OUT})")
    parser.add_argument(
        "--startup-timeout", type=float, default=120.0, metavar="SECONDS", help="give up on a slow stack (120)"
    )
    parser.add_argument("--keep-data", action="store_true", help="keep the stack's data and logs (for debugging)")
    parser.add_argument(
        "--hold",
        action="store_true",
        help="keep the stack running afterwards, to look around in the UI (Ctrl-C or SIGTERM stops it)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    for noisy in ("temporalio", "httpx", "web3", "asyncio", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        written = asyncio.run(
            run(args.out, startup_timeout=args.startup_timeout, keep_data=args.keep_data, hold=args.hold)
        )
    except KeyboardInterrupt:
        return 130
    except (ScreenshotError, StackError, TimeoutError) as exc:
        print(f"screenshots: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
