"""``python -m devstack``: run the whole dev stack in the foreground (what ``make run`` does)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

DESCRIPTION = """\
Run the recovery dev stack in the foreground: the Temporal dev server (SQLite file in WAL mode,
custom search attributes registered), one anvil per configured local chain (test USDT deployed
at the real USDT address, hot and gas wallets funded), a webhook receiver for the notifications,
the worker and the API. Ctrl-C stops it.

Ports and paths come from the settings (environment variables or recovery.toml):
  RECOVERY_TEMPORAL_ADDRESS  Temporal gRPC address          (default localhost:7233)
  RECOVERY_UI_PORT           Temporal Web UI port           (default 8233)
  RECOVERY_API_PORT          API port                       (default 8000)
  RECOVERY_CHAINS            chains as JSON; each anvil listens on its rpc_urls[0] port
  RECOVERY_NOTIFICATIONS__DEV_RECEIVER_PORT  the dev webhook receiver's port (default 8099;
                             not started when RECOVERY_NOTIFICATIONS__URL points elsewhere)
  RECOVERY_DATA_DIR          state and logs                 (default .data)

Children's output goes to <data dir>/logs/<name>.log.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data-dir",
        help="directory for Temporal's database, the chains' state and the logs (sets RECOVERY_DATA_DIR)",
    )
    parser.add_argument(
        "--startup-timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="give up if a component is not ready after this long (default 120)",
    )
    parser.add_argument("--no-worker", action="store_true", help="do not start the worker (run your own)")
    parser.add_argument("--no-api", action="store_true", help="do not start the API (run your own)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s devstack: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    for noisy in ("temporalio", "httpx", "web3", "asyncio", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if args.verbose else logging.WARNING)

    if args.data_dir:
        os.environ["RECOVERY_DATA_DIR"] = os.path.abspath(args.data_dir)

    from pydantic import ValidationError

    from devstack.stack import run_stack
    from recovery.settings import get_settings

    try:
        settings = get_settings()
    except ValidationError as exc:
        print(f"devstack: invalid settings: {exc}", file=sys.stderr)
        return 1
    try:
        return asyncio.run(
            run_stack(
                settings,
                startup_timeout=args.startup_timeout,
                with_worker=not args.no_worker,
                with_api=not args.no_api,
            )
        )
    except KeyboardInterrupt:  # a second Ctrl-C before the handlers were installed
        return 130


if __name__ == "__main__":
    sys.exit(main())
