"""A rescue transfer settles one case only, on both databases: the claim is idempotent for its own case,
refused for any other, and the unique constraint holds even against a row written past the code."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from store.manual_executions import ManualExecution, claim_transfer

TX = "0x" + "AB" * 32


def _claim(session: Session, case_id: str, *, log_index: int = 0, tx_hash: str = TX) -> str:
    return claim_transfer(
        session, case_id=case_id, chain="bsc", tx_hash=tx_hash, log_index=log_index, amount=10**18, engineer="bob"
    )


def test_a_transfer_is_linked_to_one_case_only(db_engine: Engine) -> None:
    with Session(db_engine) as session:
        assert _claim(session, "case-a") == "case-a"
        assert _claim(session, "case-a") == "case-a"  # a retry of the same case
        assert _claim(session, "case-b", tx_hash=TX.lower()) == "case-a"  # the hash's case does not matter
        # a case settled by one transfer is not settled by another
        assert _claim(session, "case-a", log_index=1).startswith("case-a (with ")
        assert _claim(session, "case-b", log_index=1) == "case-b"


def test_the_database_refuses_a_second_link_of_the_same_transfer(db_engine: Engine) -> None:
    with Session(db_engine) as session:
        _claim(session, "case-a")
        session.add(
            ManualExecution(
                case_id="case-c", chain="bsc", tx_hash=TX.lower(), log_index=0, amount=1, engineer="mallory"
            )
        )
        with pytest.raises(IntegrityError):
            session.commit()
