"""Command-line pieces shared by the benchmarks."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return number


def bench_parser(name: str, doc: str | None) -> argparse.ArgumentParser:
    """A benchmark's parser: ``python -m bench NAME``, described by its module docstring after the summary."""
    return argparse.ArgumentParser(
        prog=f"python -m bench {name}",
        description=doc.split("\n\n", 2)[2] if doc and doc.count("\n\n") >= 2 else doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
