"""Custom search attributes every case workflow carries (the recovery engineers filter on them)."""

from __future__ import annotations

from typing import Any

from temporalio.common import SearchAttributeKey

CASE_STATUS = SearchAttributeKey.for_keyword("CaseStatus")
PATTERN = SearchAttributeKey.for_keyword("Pattern")
CHAIN = SearchAttributeKey.for_keyword("Chain")
ASSET = SearchAttributeKey.for_keyword("Asset")
AMOUNT_USD = SearchAttributeKey.for_int("AmountUsd")
"""Whole US dollars, rounded down: for filtering only; exact amounts live on the case."""
USER_ID = SearchAttributeKey.for_keyword("UserId")

ALL: list[SearchAttributeKey[Any]] = [CASE_STATUS, PATTERN, CHAIN, ASSET, AMOUNT_USD, USER_ID]


def cli_flags() -> list[str]:
    """``--search-attribute Name=Type`` flags for ``temporal server start-dev``."""
    kinds = {"KEYWORD": "Keyword", "INT": "Int"}
    flags: list[str] = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}={kinds[key.indexed_value_type.name]}"]
    return flags
