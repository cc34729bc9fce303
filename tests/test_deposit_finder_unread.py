"""The scanner never drops a transfer to a watched address it cannot read (an NFT): the finder logs it and
``recovery scan`` lists it, though no case is opened for it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from chains.evm_scan import ScanBatch, UnreadLog
from recovery.settings import Settings
from services.deposit_finder import DepositFinder

NFT = UnreadLog(block_number=17_173_049, tx_hash="0x" + "ab" * 32, what="an ERC-721 transfer of token id 42")


class _Scanner:
    async def scan(self, from_block: int, to_block: int, watched: list[str]) -> AsyncIterator[ScanBatch]:
        yield ScanBatch(from_block=from_block, to_block=from_block + 9)
        yield ScanBatch(from_block=from_block + 10, to_block=to_block, unread=[NFT])


async def test_an_unreadable_transfer_to_a_watched_address_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    finder = DepositFinder(settings=Settings(), engine=None, opener=None, signer=None)  # type: ignore[arg-type]
    finder.scanner = lambda chain: _Scanner()  # type: ignore[assignment,method-assign,return-value]
    batches: list[Any] = []
    with caplog.at_level(logging.WARNING, logger="services.deposit_finder"):
        summary = await finder.scan(
            "bsc", 100, 119, addresses=["0x" + "11" * 20], on_batch=lambda b, _o: batches.append(b)
        )
    assert summary.unread == [NFT] and summary.cases == [] and len(batches) == 2
    assert "token id 42" in caplog.text and NFT.tx_hash in caplog.text
