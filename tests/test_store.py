"""The case store on SQLite and (with TEST_POSTGRES_URL) PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import StatementError
from sqlmodel import Session, select

from recovery.models import CaseStatus, CaseUpdate, Pattern, Quote, TimelineEvent, Transfer
from recovery.units import format_units, parse_units
from store import cases, signed_txs, users
from tests.db_fixtures import TEST_MNEMONIC, MnemonicSigner, deposit_path_for_tests

HUGE = 2**255
MAX_UINT256 = 2**256 - 1


def new_user(session: Session, signer: MnemonicSigner, user_id: str = "alice") -> tuple[users.User, str]:
    return users.create_user(session, user_id=user_id, signer=signer, path_for=deposit_path_for_tests)


def new_case(session: Session, case_id: str = "case-1", user_id: str = "alice") -> cases.Case:
    return cases.create_case(
        session, case_id=case_id, user_id=user_id, chain="bsc", tx_hash="0x" + "ab" * 32, log_index=3
    )


def event(key: str, status: CaseStatus = CaseStatus.TRACING, message: str = "") -> TimelineEvent:
    return TimelineEvent(key=key, status=status, message=message or key)


def run_threads(n: int, target: Callable[[int], Any]) -> list[Any]:
    """Run ``target(i)`` in n threads released together; returns results (or exceptions) in order."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target(i)
        except Exception as exc:  # collected and asserted by the test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


# --- amounts --------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 1, 10**20, 2**63, HUGE, MAX_UINT256])
def test_amounts_round_trip_exactly(db_engine: Engine, fake_signer: MnemonicSigner, value: int) -> None:
    with Session(db_engine) as session:
        new_case(session)
        case = cases.get_case(session, case_id="case-1")
        assert case is not None
        case.amount = case.fee = case.gas = case.credited = value
        session.add(case)
        session.commit()

    with Session(db_engine) as session:
        case = cases.get_case(session, case_id="case-1")
        assert case is not None
        for got in (case.amount, case.fee, case.gas, case.credited):
            assert type(got) is int
            assert got == value


def test_amount_column_is_exact_on_each_backend(db_engine: Engine) -> None:
    with Session(db_engine) as session:
        new_case(session)
        case = cases.get_case(session, case_id="case-1")
        assert case is not None
        case.amount = HUGE
        session.add(case)
        session.commit()
    with db_engine.connect() as conn:
        if db_engine.dialect.name == "sqlite":
            kind, raw = conn.execute(text("SELECT typeof(amount), amount FROM cases")).one()
            assert (kind, raw) == ("text", str(HUGE))
        else:
            raw = conn.execute(text("SELECT amount FROM cases")).scalar_one()
            assert raw == Decimal(HUGE)
            # numeric in SQL, so PostgreSQL can compare and sum exactly
            assert conn.execute(text("SELECT amount + 1 FROM cases")).scalar_one() == Decimal(HUGE + 1)


@pytest.mark.parametrize("bad", [1.5, Decimal("1"), "100", True])
def test_amount_refuses_non_int(db_session: Session, bad: Any) -> None:
    case = new_case(db_session)
    case.amount = bad
    db_session.add(case)
    with pytest.raises(StatementError, match="amounts must be int"):
        db_session.commit()


def test_format_and_parse_units() -> None:
    assert format_units(100_500_000, 6) == "100.5"
    assert format_units(10**20, 18) == "100"
    assert format_units(1, 18) == "0.000000000000000001"
    assert format_units(0, 6) == "0"
    assert format_units(MAX_UINT256, 18) == str(MAX_UINT256)[:-18] + "." + str(MAX_UINT256)[-18:]
    assert format_units(-1_500_000, 6) == "-1.5"
    assert parse_units("100.5", 6) == 100_500_000
    assert parse_units("100", 18) == 10**20
    assert parse_units("0.000000000000000001", 18) == 1
    assert parse_units(format_units(MAX_UINT256, 18), 18) == MAX_UINT256
    assert parse_units("1e3", 6) == 1000 * 10**6
    with pytest.raises(ValueError, match="decimal places"):
        parse_units("1.0000001", 6)
    with pytest.raises(ValueError):
        parse_units("NaN", 6)


# --- users ----------------------------------------------------------------------------------------


def test_create_user_allocates_indexes_and_addresses(db_session: Session, fake_signer: MnemonicSigner) -> None:
    alice, alice_token = new_user(db_session, fake_signer, "alice")
    bob, bob_token = new_user(db_session, fake_signer, "bob")
    assert (alice.deposit_index, bob.deposit_index) == (0, 1)
    assert alice.deposit_address == fake_signer.address("m/44'/60'/0'/0/0")
    # the first address of the public test mnemonic (anvil's dev account 0)
    assert alice.deposit_address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    assert bob.deposit_address != alice.deposit_address
    assert alice_token != bob_token and len(alice_token) >= 40
    # only the hash is stored
    assert alice.token_hash == users.hash_token(alice_token)
    rows = db_session.connection().execute(text("SELECT * FROM users")).all()
    dump = " ".join(str(row) for row in rows)
    assert alice_token not in dump and bob_token not in dump


def test_create_user_twice_raises_user_exists(db_session: Session, fake_signer: MnemonicSigner) -> None:
    new_user(db_session, fake_signer, "alice")
    with pytest.raises(users.UserExists, match="alice"):
        new_user(db_session, fake_signer, "alice")
    with pytest.raises(ValueError):
        new_user(db_session, fake_signer, "  ")
    assert len(db_session.exec(select(users.User)).all()) == 1


def test_concurrent_user_creation_gets_distinct_indexes(db_engine: Engine, fake_signer: MnemonicSigner) -> None:
    def create(i: int) -> int:
        with Session(db_engine) as session:
            user, _ = new_user(session, fake_signer, f"user-{i}")
            return user.deposit_index

    results = run_threads(6, create)
    assert sorted(results) == list(range(6)), results


def test_authenticate(db_session: Session, fake_signer: MnemonicSigner) -> None:
    alice, token = new_user(db_session, fake_signer, "alice")
    found = users.authenticate(db_session, token=token)
    assert found is not None and found.user_id == "alice"
    assert users.authenticate(db_session, token=token + "x") is None
    assert users.authenticate(db_session, token="") is None
    assert users.authenticate(db_session, token=alice.token_hash) is None  # the hash is not a token


def test_deposit_owner_is_case_insensitive(db_session: Session, fake_signer: MnemonicSigner) -> None:
    alice, _ = new_user(db_session, fake_signer, "alice")
    for form in (alice.deposit_address, alice.deposit_address.lower(), "0x" + alice.deposit_address[2:].upper()):
        found = users.deposit_owner(db_session, address=form, memo=None)
        assert found is not None and found.user_id == "alice"
    assert users.deposit_owner(db_session, address="0x" + "00" * 20, memo=None) is None


def test_first_user_takes_the_signers_first_deposit_path(db_session: Session) -> None:
    signer = pytest.importorskip("chains.signer")
    user, _ = users.create_user(
        db_session, user_id="carol", signer=MnemonicSigner(TEST_MNEMONIC), path_for=signer.deposit_path
    )
    assert user.deposit_address == MnemonicSigner().address(signer.deposit_path(0))


# --- cases ----------------------------------------------------------------------------------------


def test_create_case_and_duplicate(db_session: Session) -> None:
    deposit = Transfer(
        chain="bsc",
        tx_hash="0x" + "ab" * 32,
        log_index=3,
        token_address="0x55d398326f99059fF775485246999027B3197955",
        asset="USDT",
        decimals=18,
        sender="0x" + "11" * 20,
        recipient="0x" + "22" * 20,
        amount=10**20,
    )
    case = cases.create_case(
        db_session,
        case_id="case-1",
        user_id="alice",
        chain="bsc",
        tx_hash=deposit.tx_hash,
        log_index=3,
        deposit=deposit,
    )
    assert case.status is CaseStatus.RECEIVED
    assert (case.asset, case.decimals, case.amount) == ("USDT", 18, 10**20)
    assert case.created_at.tzinfo is not None
    events = cases.timeline(db_session, case_id="case-1")
    assert [(e.key, e.status) for e in events] == [("received", CaseStatus.RECEIVED)]

    with pytest.raises(cases.CaseExists) as info:
        new_case(db_session, case_id="case-1", user_id="mallory")
    assert info.value.existing.user_id == "alice"
    assert len(cases.timeline(db_session, case_id="case-1")) == 1


def test_list_count_and_delete_cases(db_session: Session) -> None:
    for i in range(5):
        new_case(db_session, case_id=f"case-{i}", user_id="alice")
    new_case(db_session, case_id="case-bob", user_id="bob")
    listed = cases.list_cases(db_session, user_id="alice")
    assert [c.case_id for c in listed] == [f"case-{i}" for i in reversed(range(5))]
    first = cases.list_cases(db_session, user_id="alice", limit=2)
    assert [c.case_id for c in first] == ["case-4", "case-3"]
    after = (first[-1].created_at, first[-1].case_id)
    assert [c.case_id for c in cases.list_cases(db_session, user_id="alice", limit=2, after=after)] == [
        "case-2",
        "case-1",
    ]
    assert cases.count_cases(db_session, user_id="alice") == 5
    received = cases.CaseFilter(statuses=(CaseStatus.RECEIVED,))
    assert cases.count_cases(db_session, user_id="alice", where=received) == 5
    assert cases.list_cases(db_session, user_id="alice", where=cases.CaseFilter(statuses=(CaseStatus.COMPLETED,))) == []
    later = cases.CaseFilter(created_from=first[0].created_at + timedelta(microseconds=1))
    assert cases.count_cases(db_session, user_id="alice", where=later) == 0
    assert cases.delete_case(db_session, case_id="case-4") is True
    assert cases.delete_case(db_session, case_id="case-4") is False
    assert cases.get_case(db_session, case_id="case-4") is None
    assert cases.timeline(db_session, case_id="case-4") == []


def test_apply_case_update_is_idempotent(db_session: Session) -> None:
    new_case(db_session)
    update = CaseUpdate(
        case_id="case-1",
        event=event("classified", CaseStatus.CLASSIFIED, "Sent on BSC to your address"),
        pattern=Pattern.WRONG_NETWORK_SAME_KEY,
        reason="same key on another chain",
        asset="USDT",
        decimals=18,
        amount=HUGE,
    )
    assert cases.apply_case_update(db_session, update=update) is True
    case = cases.get_case(db_session, case_id="case-1")
    assert case is not None
    first_updated = case.updated_at
    assert (case.status, case.pattern, case.amount, case.asset) == (
        CaseStatus.CLASSIFIED,
        Pattern.WRONG_NETWORK_SAME_KEY,
        HUGE,
        "USDT",
    )

    # the same key again, even with different content, changes nothing
    replay = update.model_copy(update={"amount": 1, "reason": "other", "event": event("classified")})
    assert cases.apply_case_update(db_session, update=replay) is False
    db_session.expire_all()
    case = cases.get_case(db_session, case_id="case-1")
    assert case is not None
    assert (case.amount, case.reason, case.status, case.updated_at) == (
        HUGE,
        "same key on another chain",
        CaseStatus.CLASSIFIED,
        first_updated,
    )
    assert [e.key for e in cases.timeline(db_session, case_id="case-1")] == ["received", "classified"]


def test_apply_case_update_quote_and_terminal_status(db_session: Session) -> None:
    new_case(db_session)
    quote = Quote(
        asset="USDT",
        decimals=18,
        amount=10**20,
        amount_usd=Decimal("100"),
        percent_bps=500,
        fee_usd=Decimal("10.00"),
        fee=10 * 10**18,
        gas_estimate=10**16,
        net_estimate=10**20 - 10 * 10**18 - 10**16,
    )
    assert cases.apply_case_update(
        db_session, update=CaseUpdate(case_id="case-1", event=event("quoted", CaseStatus.RECOVERING), quote=quote)
    )
    case = cases.get_case(db_session, case_id="case-1")
    assert case is not None
    assert (case.fee, case.fee_usd) == (10 * 10**18, "10.00")
    assert case.quote_json is not None and Quote.model_validate_json(case.quote_json) == quote

    # what was credited is the settlement's to write (services.settlement), not an update's
    assert cases.apply_case_update(
        db_session,
        update=CaseUpdate(
            case_id="case-1", event=event("completed", CaseStatus.COMPLETED), sweep_tx_hash="0x" + "cd" * 32
        ),
    )
    case = cases.get_case(db_session, case_id="case-1")
    assert case is not None
    assert (case.status, case.credited, case.fee, case.sweep_tx_hash) == (
        CaseStatus.COMPLETED,
        None,
        10 * 10**18,
        "0x" + "cd" * 32,
    )
    # a late non-terminal event is recorded but does not reopen the case
    assert cases.apply_case_update(db_session, update=CaseUpdate(case_id="case-1", event=event("late-trace")))
    case = cases.get_case(db_session, case_id="case-1")
    assert case is not None and case.status is CaseStatus.COMPLETED
    assert [e.key for e in cases.timeline(db_session, case_id="case-1")][-1] == "late-trace"
    # nor does a re-run's terminal verdict (a Reset in the Web UI) rewrite it: the record stays as it was
    assert cases.apply_case_update(
        db_session,
        update=CaseUpdate(
            case_id="case-1",
            event=event("rejected", CaseStatus.REJECTED),
            pattern=Pattern.ALREADY_CREDITED,
            reason="already credited",
            amount=1,
        ),
    )
    case = cases.get_case(db_session, case_id="case-1")
    assert case is not None
    assert (case.status, case.pattern, case.reason, case.amount, case.sweep_tx_hash) == (
        CaseStatus.COMPLETED,
        None,
        "",
        None,
        "0x" + "cd" * 32,
    )
    last = cases.timeline(db_session, case_id="case-1")[-1]
    assert last.key == "rejected" and last.status is CaseStatus.COMPLETED
    assert last.message.startswith("After the case was closed as completed, a re-run reported (rejected)")


def test_apply_case_update_unknown_case(db_session: Session) -> None:
    with pytest.raises(cases.CaseNotFound):
        cases.apply_case_update(db_session, update=CaseUpdate(case_id="nope", event=event("x")))


def test_apply_case_update_race_applies_once(db_engine: Engine) -> None:
    with Session(db_engine) as session:
        new_case(session)

    def apply(i: int) -> bool:
        with Session(db_engine) as session:
            update = CaseUpdate(case_id="case-1", event=event("traced"), amount=1000 + i)
            return cases.apply_case_update(session, update=update)

    results = run_threads(6, apply)
    assert sorted(results, key=str) == [False] * 5 + [True], results
    with Session(db_engine) as session:
        events = cases.timeline(session, case_id="case-1")
        assert [e.key for e in events] == ["received", "traced"]


# --- signed transactions --------------------------------------------------------------------------

SENDER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def save_tx(session: Session, key: str, nonce: int, *, chain: str = "bsc", sender: str = SENDER) -> Any:
    return signed_txs.save_signed_tx(
        session,
        idempotency_key=key,
        case_id="case-1",
        chain=chain,
        purpose="sweep",
        from_address=sender,
        nonce=nonce,
        tx_hash="0x" + f"{nonce:064x}",
        raw_tx="02f8" + "00" * 40,
        gas_limit=21_000,
        max_fee_per_gas=3 * 10**9,
        value=10**21,
    )


def test_signed_transactions_and_nonces(db_session: Session) -> None:
    assert signed_txs.max_nonce(db_session, chain="bsc", from_address=SENDER) is None
    row = save_tx(db_session, "sweep:case-1", 0)
    assert (row.nonce, row.value, row.from_address) == (0, 10**21, SENDER.lower())
    stored = signed_txs.get_signed_tx(db_session, idempotency_key="sweep:case-1")
    assert stored is not None and stored.raw_tx == row.raw_tx
    assert signed_txs.get_signed_tx(db_session, idempotency_key="nope") is None

    # the same key again: the stored transaction wins
    with pytest.raises(signed_txs.SignedTxExists) as info:
        save_tx(db_session, "sweep:case-1", 5)
    assert info.value.existing.nonce == 0

    # the same nonce from the same address (any letter case) under another key is refused
    with pytest.raises(signed_txs.NonceTaken):
        save_tx(db_session, "sweep:case-2", 0, sender=SENDER.upper().replace("0X", "0x"))
    # the same nonce on another chain, or from another address, is fine
    save_tx(db_session, "sweep:case-3", 0, chain="ethereum")
    save_tx(db_session, "sweep:case-4", 0, sender="0x" + "22" * 20)
    save_tx(db_session, "sweep:case-5", 1)
    assert signed_txs.max_nonce(db_session, chain="bsc", from_address=SENDER.lower()) == 1
    assert signed_txs.max_nonce(db_session, chain="ethereum", from_address=SENDER) == 0


def test_concurrent_signers_never_share_a_nonce(db_engine: Engine) -> None:
    def sign(i: int) -> int:
        for _ in range(20):
            with Session(db_engine) as session:
                top = signed_txs.max_nonce(session, chain="bsc", from_address=SENDER)
                nonce = 0 if top is None else top + 1
            with Session(db_engine) as session:
                try:
                    return save_tx(session, f"sweep:case-{i}", nonce).nonce
                except signed_txs.NonceTaken:
                    continue
        raise AssertionError("no nonce")

    results = run_threads(5, sign)
    assert sorted(results) == [0, 1, 2, 3, 4], results


def test_writes_after_reads_on_the_same_session_wait_for_the_lock(db_engine: Engine) -> None:
    """The API authenticates (a read) then writes on one session; concurrent writers must queue, not fail."""
    with Session(db_engine) as session:
        new_case(session)

    def read_then_write(i: int) -> bool:
        with Session(db_engine) as session:
            cases.get_case(session, case_id="case-1")  # opens a read transaction
            return cases.apply_case_update(session, update=CaseUpdate(case_id="case-1", event=event(f"step-{i}")))

    results = run_threads(8, read_then_write)
    assert results == [True] * 8, results
    with Session(db_engine) as session:
        assert len(cases.timeline(session, case_id="case-1")) == 9


# --- deposit addresses ------------------------------------------------------------------------------


def test_rotated_address_stays_the_users_and_is_deprecated(db_session: Session, fake_signer: MnemonicSigner) -> None:
    user, _ = new_user(db_session, fake_signer)
    old_address, old_index = user.deposit_address, user.deposit_index
    rotated = users.rotate_deposit_address(
        db_session, user_id="alice", signer=fake_signer, path_for=deposit_path_for_tests
    )
    assert rotated.deposit_address != old_address and rotated.deposit_index != old_index
    old = users.address_owner(db_session, address=old_address.upper().replace("0X", "0x"))
    assert old is not None and old.user_id == "alice" and old.deprecated and old.deposit_index == old_index
    current = users.address_owner(db_session, address=rotated.deposit_address)
    assert current is not None and not current.deprecated and current.deposit_index == rotated.deposit_index
    # the next user never reuses the retired index
    bob, _ = new_user(db_session, fake_signer, "bob")
    assert bob.deposit_index not in (old_index, rotated.deposit_index)
    assert set(users.watched_addresses(db_session)) == {
        a.lower() for a in (old_address, rotated.deposit_address, bob.deposit_address)
    }


def test_shared_address_owners_are_told_apart_by_memo(db_session: Session, fake_signer: MnemonicSigner) -> None:
    new_user(db_session, fake_signer, "alice")
    new_user(db_session, fake_signer, "bob")
    shared = "rExchangeSharedDepositAddress1111"
    users.add_deposit_address(db_session, user_id="alice", family="xrpl", address=shared, memo="1001")
    users.add_deposit_address(db_session, user_id="bob", family="xrpl", address=shared, memo="1002")
    assert users.is_shared_address(db_session, address=shared)
    owner = users.address_owner(db_session, address=shared, memo="1002")
    assert owner is not None and owner.user_id == "bob"
    assert users.address_owner(db_session, address=shared, memo="9999") is None
    assert users.address_owner(db_session, address=shared) is None  # no memo: nobody's
    with pytest.raises(ValueError, match="already assigned"):
        users.add_deposit_address(db_session, user_id="bob", family="xrpl", address=shared, memo="1001")
    with pytest.raises(ValueError, match="no user"):
        users.add_deposit_address(db_session, user_id="carol", family="bitcoin", address="bc1qexample")
    assert "rexchange" not in " ".join(users.watched_addresses(db_session))  # no key held: not watched


def test_an_address_without_memo_has_one_owner(db_session: Session, fake_signer: MnemonicSigner) -> None:
    alice, _ = new_user(db_session, fake_signer, "alice")
    new_user(db_session, fake_signer, "bob")
    users.add_deposit_address(db_session, user_id="alice", family="bitcoin", address="bc1qalice")
    with pytest.raises(ValueError, match="already assigned"):
        users.add_deposit_address(db_session, user_id="bob", family="bitcoin", address="bc1qalice")
    with pytest.raises(ValueError, match="alice's deposit address"):
        users.add_deposit_address(db_session, user_id="bob", family="evm", address=alice.deposit_address)
