"""Database engine, tables and the case store.

Every amount is a Python ``int`` in base units stored exactly by :class:`Amount` (``NUMERIC(78,0)`` on
PostgreSQL, decimal text on SQLite). Service functions are keyword-only and commit their own
transaction; call them on a session with no transaction open (a fresh session, or right after a commit).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy import (
    DateTime,
    Engine,
    Index,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    text,
)
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator, TypeEngine
from sqlmodel import Field, Session, SQLModel, col, select

from recovery.models import CaseStatus, CaseUpdate, Pattern, Transfer
from recovery.units import format_units, parse_units  # noqa: F401  (re-exported)

# --------------------------------------------------------------------------------------------------
# Column types
# --------------------------------------------------------------------------------------------------


class Amount(TypeDecorator[int]):
    """An exact integer of any size (token amounts exceed int64: 100 USDT at 18 decimals is 1e20).

    PostgreSQL: ``NUMERIC(78, 0)`` (fits 2**256 - 1). SQLite: ``TEXT`` holding the decimal digits, because
    SQLite's NUMERIC affinity turns integers beyond int64 into floats. Values come back as ``int``.
    Sorting and summing in SQL is therefore only numeric on PostgreSQL; sum in Python for portability.
    """

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(78, 0))
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"amounts must be int base units, got {type(value).__name__}: {value!r}")
        if dialect.name == "postgresql":
            return Decimal(value)
        return str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if isinstance(value, Decimal):
            if value != value.to_integral_value():
                raise ValueError(f"non-integral amount in the database: {value}")
            return int(value)
        return int(value)

    @property
    def python_type(self) -> type:
        return int


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: use datetime.now(UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class StrEnumType(TypeDecorator[Enum]):
    """A ``StrEnum`` stored as plain text (no PostgreSQL ENUM type to migrate)."""

    impl = String(40)
    cache_ok = True

    def __init__(self, enum_cls: type[Enum]) -> None:
        super().__init__()
        self.enum_cls = enum_cls

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else self.enum_cls(value).value

    def process_result_value(self, value: Any, dialect: Dialect) -> Enum | None:
        return None if value is None else self.enum_cls(value)


def utcnow() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------------------------------
# Engine
# --------------------------------------------------------------------------------------------------

_IMMEDIATE = "recovery_sqlite_begin_immediate"
_Row = TypeVar("_Row", bound=SQLModel)


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for ``sqlite:///path`` or ``postgresql://...`` (driven by psycopg 3). No I/O but mkdir."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        return create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=40)
    if parsed.get_backend_name() != "sqlite":
        raise ValueError(f"unsupported database URL {parsed.render_as_string(hide_password=True)}")

    memory = parsed.database in (None, "", ":memory:")
    if memory:
        engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False}, poolclass=StaticPool)
    else:
        assert parsed.database is not None
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=20,
            max_overflow=100,
        )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy emits BEGIN itself (below), so that writers can take the lock up front.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # BEGIN IMMEDIATE takes the write lock at once (waiting up to busy_timeout), so a write
        # transaction never fails half-way upgrading a read snapshot ("database is locked").
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_IMMEDIATE) else "BEGIN")

    return engine


def init_db(engine: Engine) -> None:
    """Create every table (idempotent). Tables of ``fees.ledger`` share this metadata."""
    import fees.ledger  # noqa: F401  (registers LedgerCredit and FeeEntry)

    SQLModel.metadata.create_all(engine)


def get_session(engine: Engine) -> Iterator[Session]:
    """Generator for dependency injection (FastAPI ``Depends``)."""
    with Session(engine, expire_on_commit=False) as session:
        yield session


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """``with session_scope(engine) as session:`` for scripts, the CLI and activities."""
    with Session(engine, expire_on_commit=False) as session:
        yield session


def _begin_write_unless_exists(session: Session, model: type[_Row], key: str) -> _Row | None:
    """Open a write transaction, unless a row with this primary key exists: then roll back and return
    that row, detached so that its loaded state stays readable."""
    begin_write(session)
    existing = session.get(model, key)
    if existing is not None:
        session.expunge(existing)
        session.rollback()
    return existing


def begin_write(session: Session) -> None:
    """Open the session's transaction as a write transaction (``BEGIN IMMEDIATE`` on SQLite).

    On SQLite an open transaction with nothing pending (reads only, e.g. the API's authentication) is
    committed first: upgrading a read snapshot to a write fails at once under contention instead of
    waiting for the lock. A transaction with pending changes is joined as is.
    """
    if session.in_transaction():
        if session.get_bind().dialect.name != "sqlite" or session.new or session.dirty or session.deleted:
            return
        session.commit()
    session.connection(execution_options={_IMMEDIATE: True})


# --------------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------------


class UserBase(SQLModel):
    user_id: str = Field(primary_key=True, max_length=128)
    deposit_index: int = Field(unique=True)
    deposit_address: str = Field(unique=True, index=True, max_length=128)


class User(UserBase, table=True):
    __tablename__ = "users"  # type: ignore[assignment]

    token_hash: str = Field(unique=True, max_length=64)
    """sha256 hex of the API token; the token itself is shown once and never stored."""
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class UserPublic(UserBase):
    created_at: datetime


Index("ix_users_deposit_address_lower", func.lower(User.__table__.c.deposit_address), unique=True)  # type: ignore[attr-defined]


class DepositAddress(SQLModel, table=True):
    """A deposit address other than a user's current EVM one: an older EVM address the user still
    owns (``deprecated``), or the user's address on another chain family. On shared-address chains
    (XRP) every user has the same ``address`` and their own ``memo`` (destination tag)."""

    __tablename__ = "deposit_addresses"  # type: ignore[assignment]
    __table_args__ = (UniqueConstraint("family", "address", "memo", name="uq_deposit_addresses_family_address_memo"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(index=True, max_length=128)
    family: str = Field(max_length=16)
    address: str = Field(index=True, max_length=128)
    """EVM addresses lower-case; other families as the chain writes them."""
    memo: str | None = Field(default=None, max_length=64)
    deposit_index: int | None = Field(default=None, unique=True)
    """The signer's derivation index when the exchange holds this address's key (EVM)."""
    deprecated: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


Index(
    "uq_deposit_addresses_family_address_no_memo",
    DepositAddress.__table__.c.family,  # type: ignore[attr-defined]
    DepositAddress.__table__.c.address,  # type: ignore[attr-defined]
    unique=True,
    sqlite_where=text("memo IS NULL"),
    postgresql_where=text("memo IS NULL"),
)
"""NULLs are distinct in the table's unique constraint: without this an address without memo could be
given to two users."""


class CaseBase(SQLModel):
    chain: str | None = Field(default=None, max_length=64)
    tx_hash: str = Field(index=True, max_length=130)
    log_index: int | None = None


class Case(CaseBase, table=True):
    __tablename__ = "cases"  # type: ignore[assignment]

    case_id: str = Field(primary_key=True, max_length=255)
    user_id: str = Field(index=True, max_length=128)
    status: CaseStatus = Field(default=CaseStatus.RECEIVED, sa_type=StrEnumType(CaseStatus))
    pattern: Pattern | None = Field(default=None, sa_type=StrEnumType(Pattern))
    reason: str = Field(default="", sa_type=Text)
    asset: str | None = Field(default=None, max_length=64)
    token_address: str | None = Field(default=None, max_length=128)
    decimals: int | None = None
    amount: int | None = Field(default=None, sa_type=Amount)
    fee: int | None = Field(default=None, sa_type=Amount)
    gas: int | None = Field(default=None, sa_type=Amount)
    credited: int | None = Field(default=None, sa_type=Amount)
    fee_usd: str | None = Field(default=None, max_length=64)
    quote_json: str | None = Field(default=None, sa_type=Text)
    topup_tx_hash: str | None = Field(default=None, max_length=130)
    sweep_tx_hash: str | None = Field(default=None, max_length=130)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


Index("ix_cases_user_created", Case.__table__.c.user_id, Case.__table__.c.created_at)  # type: ignore[attr-defined]


class CaseEvent(SQLModel, table=True):
    """One line of a case's timeline; ``(case_id, key)`` is unique so appending is idempotent."""

    __tablename__ = "case_events"  # type: ignore[assignment]
    __table_args__ = (UniqueConstraint("case_id", "key", name="uq_case_events_case_key"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(index=True, max_length=255)
    key: str = Field(max_length=255)
    status: CaseStatus = Field(sa_type=StrEnumType(CaseStatus))
    message: str = Field(default="", sa_type=Text)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SignedTransaction(SQLModel, table=True):
    """A transaction signed once per idempotency key. The raw signed tx is public once broadcast;
    no key material is ever stored here."""

    __tablename__ = "signed_transactions"  # type: ignore[assignment]
    __table_args__ = (UniqueConstraint("chain", "from_address", "nonce", name="uq_signed_tx_chain_from_nonce"),)

    idempotency_key: str = Field(primary_key=True, max_length=255)
    case_id: str = Field(index=True, max_length=255)
    chain: str = Field(max_length=64)
    purpose: str = Field(max_length=64)
    from_address: str = Field(max_length=128)
    nonce: int
    tx_hash: str = Field(max_length=130)
    raw_tx: str = Field(sa_type=Text)
    """Hex of the signed raw transaction (with or without 0x, as given)."""
    gas_limit: int | None = Field(default=None, sa_type=Amount)
    max_fee_per_gas: int | None = Field(default=None, sa_type=Amount)
    value: int | None = Field(default=None, sa_type=Amount)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


class UserExists(Exception):
    def __init__(self, user_id: str) -> None:
        super().__init__(f"user {user_id!r} already exists")
        self.user_id = user_id


class CaseExists(Exception):
    def __init__(self, existing: Case) -> None:
        super().__init__(f"case {existing.case_id!r} already exists")
        self.existing = existing


class CaseNotFound(KeyError):
    def __init__(self, case_id: str) -> None:
        super().__init__(case_id)
        self.case_id = case_id

    def __str__(self) -> str:
        return f"case {self.case_id!r} not found"


class SignedTxExists(Exception):
    """A transaction was already signed and saved under this idempotency key: use that one."""

    def __init__(self, existing: SignedTransaction) -> None:
        super().__init__(f"a transaction is already signed under {existing.idempotency_key!r}")
        self.existing = existing


class NonceTaken(Exception):
    """Another transaction was already saved for this (chain, from_address, nonce)."""

    def __init__(self, chain: str, from_address: str, nonce: int) -> None:
        super().__init__(f"nonce {nonce} of {from_address} on {chain} is already used by another transaction")
        self.chain, self.from_address, self.nonce = chain, from_address, nonce


# --------------------------------------------------------------------------------------------------
# Users
# --------------------------------------------------------------------------------------------------


class AddressSigner(Protocol):
    def address(self, path: str) -> str: ...


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


_USER_INDEX_LOCK = 0x5245_4356  # "RECV": advisory lock id for deposit-index allocation


def _default_deposit_path(index: int) -> str:
    from chains.signer import deposit_path

    return deposit_path(index)


def create_user(
    session: Session,
    *,
    user_id: str,
    signer: AddressSigner,
    path_for: Callable[[int], str] | None = None,
) -> tuple[User, str]:
    """Create a user with the next free deposit index and a fresh API token; returns (user, token).

    ``path_for`` maps a deposit index to a derivation path (default ``chains.signer.deposit_path``).
    Raises :class:`UserExists`.
    """
    user_id = user_id.strip()
    if not user_id:
        raise ValueError("user_id must not be empty")
    path_for = path_for or _default_deposit_path
    for _attempt in range(20):
        begin_write(session)
        if session.get_bind().dialect.name == "postgresql":
            # serialize deposit-index allocation (rare) instead of retrying on collisions
            session.connection().execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _USER_INDEX_LOCK})
        if session.get(User, user_id) is not None:
            session.rollback()
            raise UserExists(user_id)
        index = _next_deposit_index(session)
        token = secrets.token_urlsafe(32)
        user = User(
            user_id=user_id,
            deposit_index=index,
            deposit_address=signer.address(path_for(index)),
            token_hash=hash_token(token),
        )
        session.add(user)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            if session.get(User, user_id) is not None:
                raise UserExists(user_id) from None
            continue  # another process took this deposit index: try the next one
        session.refresh(user)
        return user, token
    raise RuntimeError("could not allocate a deposit index; try again")


def authenticate(session: Session, *, token: str) -> User | None:
    if not token:
        return None
    wanted = hash_token(token)
    user = session.exec(select(User).where(User.token_hash == wanted)).first()
    if user is None or not hmac.compare_digest(user.token_hash, wanted):
        return None
    return user


def get_user(session: Session, *, user_id: str) -> User | None:
    return session.get(User, user_id)


def _next_deposit_index(session: Session) -> int:
    last_user = session.exec(select(func.max(User.deposit_index))).one()
    last_old = session.exec(select(func.max(DepositAddress.deposit_index))).one()
    last = max((i for i in (last_user, last_old) if i is not None), default=None)
    return 0 if last is None else last + 1


class AddressOwner(SQLModel):
    """Who owns a deposit address, and how: its derivation index if the exchange holds the key."""

    user_id: str
    address: str
    deposit_index: int | None
    deprecated: bool = False
    memo: str | None = None


def address_owner(session: Session, *, address: str, memo: str | None = None) -> AddressOwner | None:
    """The owner of ``address``: a user's current EVM deposit address first, then the other known
    addresses. On a shared address only the row with the same ``memo`` matches."""
    user = session.exec(select(User).where(func.lower(User.deposit_address) == address.lower())).first()
    if user is not None:
        return AddressOwner(user_id=user.user_id, address=user.deposit_address, deposit_index=user.deposit_index)
    statement = select(DepositAddress).where(DepositAddress.address == _norm_address(address))
    statement = statement.where(DepositAddress.memo == memo) if memo is not None else statement
    rows = list(session.exec(statement.order_by(col(DepositAddress.id))).all())
    if memo is None:
        rows = [r for r in rows if r.memo is None]
    if not rows:
        return None
    row = rows[0]
    return AddressOwner(
        user_id=row.user_id,
        address=row.address,
        deposit_index=row.deposit_index,
        deprecated=row.deprecated,
        memo=row.memo,
    )


def user_by_address(session: Session, *, address: str, memo: str | None = None) -> User | None:
    """The user owning a deposit address (current or deprecated), compared case-insensitively for EVM."""
    owner = address_owner(session, address=address, memo=memo)
    return None if owner is None else session.get(User, owner.user_id)


def is_shared_address(session: Session, *, address: str) -> bool:
    """True when users tell deposits to ``address`` apart by memo (XRP destination tags)."""
    row = session.exec(
        select(DepositAddress.id).where(
            DepositAddress.address == _norm_address(address), col(DepositAddress.memo).is_not(None)
        )
    ).first()
    return row is not None


def add_deposit_address(
    session: Session,
    *,
    user_id: str,
    family: str,
    address: str,
    memo: str | None = None,
    deposit_index: int | None = None,
    deprecated: bool = False,
) -> DepositAddress:
    """Record one more deposit address of ``user_id``. Raises ``ValueError`` for an unknown user or an
    address (with memo) that already belongs to someone."""
    begin_write(session)
    if session.get(User, user_id) is None:
        session.rollback()
        raise ValueError(f"no user {user_id!r}")
    current = session.exec(select(User).where(func.lower(User.deposit_address) == address.lower())).first()
    if current is not None:
        session.rollback()
        raise ValueError(f"{family} address {address} is already assigned (it is {current.user_id}'s deposit address)")
    row = DepositAddress(
        user_id=user_id,
        family=family,
        address=_norm_address(address),
        memo=memo,
        deposit_index=deposit_index,
        deprecated=deprecated,
    )
    session.add(row)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise ValueError(f"{family} address {address}{f' memo {memo}' if memo else ''} is already assigned") from None
    session.refresh(row)
    return row


def rotate_deposit_address(
    session: Session, *, user_id: str, signer: AddressSigner, path_for: Callable[[int], str] | None = None
) -> User:
    """Give the user a fresh EVM deposit address; the old one stays theirs, marked deprecated."""
    path_for = path_for or _default_deposit_path
    begin_write(session)
    if session.get_bind().dialect.name == "postgresql":
        session.connection().execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _USER_INDEX_LOCK})
    user = session.get(User, user_id)
    if user is None:
        session.rollback()
        raise ValueError(f"no user {user_id!r}")
    index = _next_deposit_index(session)
    session.add(
        DepositAddress(
            user_id=user_id,
            family="evm",
            address=_norm_address(user.deposit_address),
            deposit_index=user.deposit_index,
            deprecated=True,
        )
    )
    session.flush()  # the old index moves to deposit_addresses before the user takes the new one
    user.deposit_index = index
    user.deposit_address = signer.address(path_for(index))
    session.add(user)
    session.commit()
    session.refresh(user)
    return user


def watched_addresses(session: Session, *, family: str = "evm") -> list[str]:
    """Every deposit address of ``family`` the exchange holds the key to (the scanner watches these)."""
    out: list[str] = []
    if family == "evm":
        out = [a.lower() for a in session.exec(select(User.deposit_address)).all()]
    rows = session.exec(
        select(DepositAddress.address).where(
            DepositAddress.family == family, col(DepositAddress.deposit_index).is_not(None)
        )
    ).all()
    return sorted(set(out) | set(rows))


# --------------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------------


def get_case(session: Session, *, case_id: str) -> Case | None:
    return session.get(Case, case_id)


def create_case(
    session: Session,
    *,
    case_id: str,
    user_id: str,
    chain: str | None,
    tx_hash: str,
    log_index: int | None,
    deposit: Transfer | None = None,
) -> Case:
    """Insert a RECEIVED case and its "received" timeline event. Raises :class:`CaseExists`.

    ``deposit``, when the claim already resolved to a transfer, pre-fills asset and amount.
    """
    existing_case = _begin_write_unless_exists(session, Case, case_id)
    if existing_case is not None:
        raise CaseExists(existing_case)
    now = utcnow()
    case = Case(
        case_id=case_id,
        user_id=user_id,
        chain=chain,
        tx_hash=tx_hash,
        log_index=log_index,
        status=CaseStatus.RECEIVED,
        created_at=now,
        updated_at=now,
    )
    if deposit is not None:
        case.asset = deposit.asset
        case.token_address = deposit.token_address
        case.decimals = deposit.decimals
        case.amount = deposit.amount
    session.add(case)
    session.add(
        CaseEvent(case_id=case_id, key="received", status=CaseStatus.RECEIVED, message="Claim received", at=now)
    )
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        existing = session.get(Case, case_id)
        if existing is None:
            raise
        raise CaseExists(existing) from None
    session.refresh(case)
    return case


def list_cases(session: Session, *, user_id: str, limit: int = 50, offset: int = 0) -> list[Case]:
    """The user's cases, newest first."""
    statement = (
        select(Case)
        .where(Case.user_id == user_id)
        .order_by(col(Case.created_at).desc(), col(Case.case_id).desc())
        .offset(offset)
        .limit(limit)
    )
    return list(session.exec(statement).all())


def count_cases(session: Session, *, user_id: str) -> int:
    return session.exec(select(func.count()).select_from(Case).where(Case.user_id == user_id)).one()


def delete_case(session: Session, *, case_id: str) -> bool:
    """Remove a case and its timeline. Only to undo a case whose workflow could not be started."""
    begin_write(session)
    case = session.get(Case, case_id)
    if case is None:
        session.rollback()
        return False
    for ev in session.exec(select(CaseEvent).where(CaseEvent.case_id == case_id)).all():
        session.delete(ev)
    session.delete(case)
    session.commit()
    return True


_PLAIN_UPDATE_FIELDS = (
    "pattern",
    "reason",
    "chain",
    "asset",
    "token_address",
    "decimals",
    "amount",
    "topup_tx_hash",
    "sweep_tx_hash",
)


def apply_case_update(session: Session, *, update: CaseUpdate) -> bool:
    """Apply ``update`` and append its timeline event in one transaction, once per event key.

    Returns False (and changes nothing) when the event key was already recorded for the case.
    Fields left ``None`` are kept. A terminal status (COMPLETED/REJECTED) never goes back to a
    non-terminal one. Raises :class:`CaseNotFound` for an unknown case.
    """
    begin_write(session)
    case = session.get(Case, update.case_id)
    if case is None:
        session.rollback()
        raise CaseNotFound(update.case_id)
    seen = session.exec(
        select(CaseEvent.id).where(CaseEvent.case_id == update.case_id, CaseEvent.key == update.event.key)
    ).first()
    if seen is not None:
        session.rollback()
        return False

    for name in _PLAIN_UPDATE_FIELDS:
        value = getattr(update, name)
        if value is not None:
            setattr(case, name, value)
    if update.quote is not None:
        case.fee = update.quote.fee
        case.fee_usd = str(update.quote.fee_usd)
        case.quote_json = update.quote.model_dump_json()
    if update.settlement is not None:
        case.credited = update.settlement.credited
        case.fee = update.settlement.fee
        case.gas = update.settlement.gas
    new_status = CaseStatus(update.event.status)
    if not (case.status.terminal and not new_status.terminal):
        case.status = new_status
    now = utcnow()
    case.updated_at = now
    session.add(case)
    session.add(
        CaseEvent(
            case_id=update.case_id,
            key=update.event.key,
            status=new_status,
            message=update.event.message,
            at=now,
        )
    )
    try:
        session.commit()
    except IntegrityError:  # a concurrent writer recorded the same event key first
        session.rollback()
        return False
    return True


def timeline(session: Session, *, case_id: str) -> list[CaseEvent]:
    statement = select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(col(CaseEvent.id))
    return list(session.exec(statement).all())


# --------------------------------------------------------------------------------------------------
# Signed transactions (nonce bookkeeping for the signer)
# --------------------------------------------------------------------------------------------------


def _norm_address(address: str) -> str:
    """EVM addresses are case-insensitive: store them lower-case. Others (base58) keep their case."""
    return address.lower() if address.startswith(("0x", "0X")) else address


def save_signed_tx(
    session: Session,
    *,
    idempotency_key: str,
    case_id: str,
    chain: str,
    purpose: str,
    from_address: str,
    nonce: int,
    tx_hash: str,
    raw_tx: str,
    gas_limit: int | None = None,
    max_fee_per_gas: int | None = None,
    value: int | None = None,
) -> SignedTransaction:
    """Record a signed transaction before broadcasting it.

    Raises :class:`SignedTxExists` (with ``.existing``) when this idempotency key already holds a
    transaction (an earlier attempt or another worker won): broadcast that one, not the new one.
    Raises :class:`NonceTaken` when another key already holds this (chain, from_address, nonce).
    """
    row = SignedTransaction(
        idempotency_key=idempotency_key,
        case_id=case_id,
        chain=chain,
        purpose=purpose,
        from_address=_norm_address(from_address),
        nonce=nonce,
        tx_hash=tx_hash,
        raw_tx=raw_tx,
        gas_limit=gas_limit,
        max_fee_per_gas=max_fee_per_gas,
        value=value,
    )
    existing_tx = _begin_write_unless_exists(session, SignedTransaction, idempotency_key)
    if existing_tx is not None:
        raise SignedTxExists(existing_tx)
    session.add(row)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        existing = session.get(SignedTransaction, idempotency_key)
        if existing is not None:
            raise SignedTxExists(existing) from None
        raise NonceTaken(chain, from_address, nonce) from None
    session.refresh(row)
    return row


def get_signed_tx(session: Session, *, idempotency_key: str) -> SignedTransaction | None:
    return session.get(SignedTransaction, idempotency_key)


def signed_from(session: Session, *, chain: str, from_address: str, min_nonce: int) -> list[SignedTransaction]:
    """Transactions signed from the address with a nonce of at least ``min_nonce`` (not yet mined)."""
    statement = select(SignedTransaction).where(
        SignedTransaction.chain == chain,
        SignedTransaction.from_address == _norm_address(from_address),
        SignedTransaction.nonce >= min_nonce,
    )
    return list(session.exec(statement).all())


def max_nonce(session: Session, *, chain: str, from_address: str) -> int | None:
    """Highest nonce recorded for the address on the chain, or None."""
    statement = select(func.max(SignedTransaction.nonce)).where(
        SignedTransaction.chain == chain, SignedTransaction.from_address == _norm_address(from_address)
    )
    return session.exec(statement).one()
