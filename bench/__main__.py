"""``python -m bench [names...] [options]``: run every ``bench/bench_*.py`` module's ``main(argv)``.

Arguments that name a module (``e2e`` or ``bench_e2e``) select it; every other argument is passed
on to each selected module (``python -m bench e2e --cases 20``). Exits non-zero if one fails.
"""

from __future__ import annotations

import importlib
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PREFIX = "bench_"

USAGE = """\
usage: python -m bench [-h] [--list] [NAME ...] [OPTIONS ...]

Run the benchmarks: every bench/bench_*.py module's main(argv), in name order, or only the NAMEs
given (e2e or bench_e2e). Every argument that is not a NAME is passed to each benchmark, for example
  python -m bench e2e --cases 20        (make bench BENCH_ARGS='e2e --cases 20')
  python -m bench e2e --help            a benchmark's own options
Exits non-zero if a benchmark fails.

options:
  -h, --help  show this help (with NAMEs: the benchmarks' help) and exit
  --list      list the benchmarks and exit

benchmarks: {names}
"""


def discover() -> list[str]:
    """Short names (without ``bench_``) of the benchmark modules, sorted."""
    return sorted(p.stem[len(PREFIX) :] for p in BENCH_DIR.glob(f"{PREFIX}*.py"))


def split_args(argv: Sequence[str], available: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separate module names from the arguments passed on to them (after ``--`` nothing is a name)."""
    names: list[str] = []
    rest: list[str] = []
    passthrough = False
    for arg in argv:
        if passthrough:
            rest.append(arg)
        elif arg == "--":
            passthrough = True
        else:
            short = arg.removeprefix(PREFIX)
            if short in available and not arg.startswith("-"):
                names.append(short)
            else:
                rest.append(arg)
    return names, rest


def run_one(name: str, argv: list[str]) -> int:
    module = importlib.import_module(f"bench.{PREFIX}{name}")
    entry: Callable[[list[str]], int | None] | None = getattr(module, "main", None)
    if entry is None:
        print(f"bench: bench/{PREFIX}{name}.py has no main(argv)", file=sys.stderr)
        return 1
    try:
        code = entry(argv)
    except SystemExit as exc:  # argparse's --help or usage errors
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        print(f"bench: {name} interrupted", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        return 1
    return int(code or 0)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    available = discover()
    names, rest = split_args(args, available)
    if not names and any(a in ("-h", "--help") for a in rest):
        print(USAGE.format(names=", ".join(available) or "(none yet)"), end="")
        return 0
    if not names and "--list" in rest:
        print("\n".join(available))
        return 0
    if not available:
        print("bench: no bench/bench_*.py modules yet")
        return 0
    selected = names or available
    failed: list[str] = []
    for name in selected:
        print(f"== bench.{PREFIX}{name}", flush=True)
        started = time.monotonic()
        code = run_one(name, rest)
        took = time.monotonic() - started
        if code != 0:
            failed.append(name)
            print(f"== bench.{PREFIX}{name} FAILED (exit {code}, {took:.1f} s)", file=sys.stderr, flush=True)
            if code == 130:
                break
        else:
            print(f"== bench.{PREFIX}{name} ok ({took:.1f} s)", flush=True)
    if failed:
        print(f"bench: {len(failed)} of {len(selected)} failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
