"""Users and their deposit addresses: who owns an address (and with which memo), and which transfer of a
transaction is a claimant's deposit."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple, Protocol

from sqlalchemy import Index, UniqueConstraint, func, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col, select

from recovery.locales import DEFAULT_LOCALE, normalize_locale
from recovery.models import TraceResult, Transfer
from store import api_tokens
from store.api_tokens import hash_token
from store.db import UTCDateTime, begin_write, norm_address, utcnow


class UserBase(SQLModel):
    user_id: str = Field(primary_key=True, max_length=128)
    deposit_index: int = Field(unique=True)
    deposit_address: str = Field(unique=True, index=True, max_length=128)


class User(UserBase, table=True):
    __tablename__ = "users"  # type: ignore[assignment]

    token_hash: str = Field(unique=True, max_length=64)
    """sha256 hex of the API token; the token itself is shown once and never stored."""
    token_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    """When the token stops working; NULL: never."""
    token_revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    """When the token was revoked (its hash then belongs to a token nobody was given)."""
    locale: str = Field(default=DEFAULT_LOCALE, max_length=16)
    """The user's language for texts and notifications (a tag of ``recovery.locales.SUPPORTED``)."""
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


Index("ix_users_deposit_address_lower", func.lower(User.__table__.c.deposit_address), unique=True)  # type: ignore[attr-defined]


class VipUser(SQLModel, table=True):
    """A user whose manual cases start at the VIP desk (a row while VIP; removed when no longer)."""

    __tablename__ = "vip_users"  # type: ignore[assignment]

    user_id: str = Field(primary_key=True, max_length=128)
    since: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


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


class UserExists(Exception):
    def __init__(self, user_id: str) -> None:
        super().__init__(f"user {user_id!r} already exists")
        self.user_id = user_id


class AddressSigner(Protocol):
    def address(self, path: str) -> str: ...


_USER_INDEX_LOCK = 0x5245_4356  # "RECV": advisory lock id for deposit-index allocation


def create_user(
    session: Session,
    *,
    user_id: str,
    signer: AddressSigner,
    path_for: Callable[[int], str],
    locale: str = DEFAULT_LOCALE,
    token_days: int | None = None,
) -> tuple[User, str]:
    """Create a user with the next free deposit index and a fresh API token (valid ``token_days`` days,
    None: until rotated or revoked); returns (user, token).

    ``path_for`` maps a deposit index to the signer's derivation path (``chains.signer.deposit_path``).
    Raises :class:`UserExists`, ``ValueError`` for an empty id, an unsupported locale or a bad lifetime.
    """
    user_id = user_id.strip()
    if not user_id:
        raise ValueError("user_id must not be empty")
    locale = normalize_locale(locale)
    expires_at = api_tokens.expiry(token_days)
    for _attempt in range(20):
        begin_write(session)
        if session.get_bind().dialect.name == "postgresql":
            # serialize deposit-index allocation (rare) instead of retrying on collisions
            session.connection().execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _USER_INDEX_LOCK})
        if session.get(User, user_id) is not None:
            session.rollback()
            raise UserExists(user_id)
        index = _next_deposit_index(session)
        token, token_hash = api_tokens.new_token()
        user = User(
            user_id=user_id,
            deposit_index=index,
            deposit_address=signer.address(path_for(index)),
            token_hash=token_hash,
            token_expires_at=expires_at,
            locale=locale,
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


def set_vip(session: Session, *, user_id: str, vip: bool) -> bool:
    """Make ``user_id`` VIP or not; returns whether it is VIP now. ``ValueError`` for an unknown user."""
    begin_write(session)
    if session.get(User, user_id) is None:
        session.rollback()
        raise ValueError(_unknown_user(user_id))
    row = session.get(VipUser, user_id)
    if vip and row is None:
        session.add(VipUser(user_id=user_id))
    elif not vip and row is not None:
        session.delete(row)
    session.commit()
    return vip


def is_vip(session: Session, *, user_id: str) -> bool:
    return session.get(VipUser, user_id) is not None


def authenticate(session: Session, *, token: str) -> User | None:
    """The user whose live token this is; None for no such token (or a revoked one). Raises
    :class:`store.api_tokens.TokenExpired` for an expired one."""
    if not token:
        return None
    user = session.exec(select(User).where(User.token_hash == hash_token(token))).first()
    if user is None or not api_tokens.check(user, token=token):
        return None
    return user


def rotate_token(session: Session, *, user_id: str, token_days: int | None = None) -> tuple[User, str]:
    """Give ``user_id`` a new API token (valid ``token_days`` days; None: no expiry); the old one stops
    working in the same transaction. ``ValueError`` for an unknown user."""
    api_tokens.expiry(token_days)  # a bad lifetime is refused before the transaction opens
    begin_write(session)
    user = session.get(User, user_id)
    if user is None:
        session.rollback()
        raise ValueError(_unknown_user(user_id))
    token = api_tokens.reissue(user, days=token_days)
    session.add(user)
    session.commit()
    session.refresh(user)
    return user, token


def revoke_token(session: Session, *, user_id: str) -> User:
    """Make ``user_id``'s API token stop working at once (until a rotation issues a new one)."""
    begin_write(session)
    user = session.get(User, user_id)
    if user is None:
        session.rollback()
        raise ValueError(_unknown_user(user_id))
    api_tokens.revoke(user)
    session.add(user)
    session.commit()
    session.refresh(user)
    return user


def set_locale(session: Session, *, user_id: str, locale: str) -> User:
    """Store the language ``user_id`` reads (``ValueError`` for an unknown user or an unsupported language)."""
    locale = normalize_locale(locale)
    begin_write(session)
    user = session.get(User, user_id)
    if user is None:
        session.rollback()
        raise ValueError(_unknown_user(user_id))
    user.locale = locale
    session.add(user)
    session.commit()
    session.refresh(user)
    return user


def _unknown_user(user_id: str) -> str:
    return f"no user {user_id!r}; create one with `recovery users create --user-id {user_id}`"


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
    statement = select(DepositAddress).where(DepositAddress.address == norm_address(address))
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


def is_shared_address(session: Session, *, address: str) -> bool:
    """True when users tell deposits to ``address`` apart by memo (XRP destination tags)."""
    row = session.exec(
        select(DepositAddress.id).where(
            DepositAddress.address == norm_address(address), col(DepositAddress.memo).is_not(None)
        )
    ).first()
    return row is not None


def memo_of(session: Session, *, user_id: str, address: str) -> str | None:
    """The memo that tells ``user_id``'s deposits to the shared ``address`` apart (an XRP destination tag)."""
    return session.exec(
        select(DepositAddress.memo)
        .where(
            DepositAddress.user_id == user_id,
            DepositAddress.address == norm_address(address),
            col(DepositAddress.memo).is_not(None),
        )
        .order_by(col(DepositAddress.id))
    ).first()


def deposit_owner(session: Session, *, address: str, memo: str | None) -> AddressOwner | None:
    """The owner of a deposit to ``address`` carrying ``memo``: the memo counts only on a shared address
    (one where users are told apart by memo, like XRP destination tags); elsewhere it is ignored."""
    shared = is_shared_address(session, address=address)
    return address_owner(session, address=address, memo=memo if shared else None)


class ClaimantDeposit(NamedTuple):
    transfer: Transfer | None
    """The claimant's first transfer in the transaction (by log index), if any."""
    foreign_only: bool
    """The transaction paid only other users' own deposit addresses (not their memo on a shared one)."""


def claimant_deposit(session: Session, *, user_id: str, trace: TraceResult) -> ClaimantDeposit:
    """Which transfer of a traced transaction is ``user_id``'s deposit. Another user's memo on the shared
    address is not "foreign": it is a memo mistake an engineer looks at, so it never refuses a claim."""
    foreign = False
    for transfer in sorted(trace.transfers, key=lambda t: t.log_index):
        owner = deposit_owner(session, address=transfer.recipient, memo=transfer.memo)
        if owner is None:
            continue
        if owner.user_id == user_id:
            return ClaimantDeposit(transfer, False)
        if owner.memo is None:
            foreign = True
    return ClaimantDeposit(None, foreign)


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
        raise ValueError(_unknown_user(user_id))
    current = session.exec(select(User).where(func.lower(User.deposit_address) == address.lower())).first()
    if current is not None:
        session.rollback()
        raise ValueError(f"{family} address {address} is already assigned (it is {current.user_id}'s deposit address)")
    row = DepositAddress(
        user_id=user_id,
        family=family,
        address=norm_address(address),
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
    session: Session, *, user_id: str, signer: AddressSigner, path_for: Callable[[int], str]
) -> User:
    """Give the user a fresh EVM deposit address; the old one stays theirs, marked deprecated."""
    begin_write(session)
    if session.get_bind().dialect.name == "postgresql":
        session.connection().execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _USER_INDEX_LOCK})
    user = session.get(User, user_id)
    if user is None:
        session.rollback()
        raise ValueError(_unknown_user(user_id))
    index = _next_deposit_index(session)
    session.add(
        DepositAddress(
            user_id=user_id,
            family="evm",
            address=norm_address(user.deposit_address),
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
