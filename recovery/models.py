"""Domain records: what a deposit, a trace, the facts about a deposit, a quote and a settlement are.

Every layer above reads and writes these (store, chains, services, workflows, API). The messages only a
workflow and its activities exchange live beside the workflow (``workflows.case_messages``).
Workflow-safe: only the standard library, pydantic and ``recovery.i18n`` (which reads no file and formats
nothing until a text is rendered). Amounts are integers in base units.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, Field, PlainSerializer, PlainValidator

from recovery.i18n import N_, AmountText, Message, Stored, amount, message_json
from recovery.roster import ApprovalPolicy, Tier
from recovery.units import amount_text

BaseUnits = Annotated[int, PlainSerializer(str, return_type=str, when_used="json")]
"""An integer amount in base units. JSON carries it as a string: the Temporal Web UI and other
JavaScript readers would otherwise round amounts above 2**53 (100 USDT with 18 decimals is 1e20)."""


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value  # a Message stays one
    if isinstance(value, dict) and isinstance(value.get("text"), str) and isinstance(value.get("msgid"), str):
        return Stored(value["text"], value["msgid"], value.get("params") or {})
    raise ValueError("expected a text, or a message as {text, msgid, params}")


def _text_json(value: str) -> str | dict[str, Any]:
    ref = message_json(value)
    return str.__str__(value) if ref is None else {"text": str.__str__(value), **ref}


Text = Annotated[
    str,
    PlainValidator(_text, json_schema_input_type=str | dict[str, Any]),
    PlainSerializer(_text_json, when_used="json"),
]
"""A text a lower layer hands on for a user to read (what an adapter could not read, a token check's finding,
why no fee can be quoted, a quote's basis): plain text, or a :class:`~recovery.i18n.Message`, which it stays.
JSON carries a message as ``{"text": <English>, "msgid": ..., "params": {...}}`` (a plain text as a string, as
before), so that it crosses an activity or the database and is rendered in the reader's language where it ends
up inside a reason or a timeline message (:func:`text_param`)."""


def text_param(text: str) -> str | tuple[str, MessageRef]:
    """A :data:`Text` as a value inside a reason or a timeline message: its English and its ref where it is a
    message, else the text as it is."""
    ref = message_json(text)
    if ref is None:
        return str.__str__(text)
    return str.__str__(text), MessageRef.model_validate(ref)


class CaseStatus(StrEnum):
    RECEIVED = "RECEIVED"
    TRACING = "TRACING"
    WAITING_CONFIRMATIONS = "WAITING_CONFIRMATIONS"
    CLASSIFIED = "CLASSIFIED"
    AWAITING_APPROVAL = "AWAITING_APPROVAL"
    AWAITING_USER = "AWAITING_USER"
    """An engineer asked the user something; the SLA clock stands still until the answer."""
    RECOVERING = "RECOVERING"
    COMPLETED = "COMPLETED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    """The user did not answer a request for information (or a quote, or for their proof) in time; nothing
    moved."""
    CANCELLED = "CANCELLED"
    """The user declined the quote; nothing moved."""

    @property
    def terminal(self) -> bool:
        return self in (CaseStatus.COMPLETED, CaseStatus.REJECTED, CaseStatus.EXPIRED, CaseStatus.CANCELLED)


class Pattern(StrEnum):
    WRONG_NETWORK_SAME_KEY = "WRONG_NETWORK_SAME_KEY"
    CONTRACT_RECIPIENT = "CONTRACT_RECIPIENT"
    UNLISTED_TOKEN = "UNLISTED_TOKEN"
    NOT_FOUND = "NOT_FOUND"
    FAILED_TX = "FAILED_TX"
    NOT_OURS = "NOT_OURS"
    NOT_YOUR_DEPOSIT = "NOT_YOUR_DEPOSIT"
    ALREADY_CREDITED = "ALREADY_CREDITED"
    TOO_SMALL = "TOO_SMALL"
    MISSING_OR_WRONG_MEMO = "MISSING_OR_WRONG_MEMO"
    TOKEN_CONTRACT_RECIPIENT = "TOKEN_CONTRACT_RECIPIENT"
    BELOW_MINIMUM = "BELOW_MINIMUM"
    DEPRECATED_ADDRESS = "DEPRECATED_ADDRESS"
    UTXO_FORK = "UTXO_FORK"


class Route(StrEnum):
    AUTOMATIC = "AUTOMATIC"
    MANUAL = "MANUAL"
    NONE = "NONE"


class RecoveryChoice(StrEnum):
    """What an approving engineer may choose to do with a deposit, where its case allows it."""

    SWEEP = "sweep"
    """Move the funds into the exchange's hot wallet and credit the claimant."""
    CREDIT = "credit"
    """Credit the claimant from funds the exchange already holds (a shared address); no transaction."""
    REFUND = "refund"
    """Send the deposit back to its sender on the same chain (after an ownership proof)."""


class Action(StrEnum):
    """What recovering a deposit takes, once decided."""

    SWEEP = "SWEEP"
    """Sign and send a transfer from the deposit address (the exchange holds its key there)."""
    CREDIT = "CREDIT"
    """The funds already sit in an exchange wallet (a shared address): a ledger credit only."""
    OFF_ENGINE = "OFF_ENGINE"
    """Steps the engine cannot take (redeploying a contract wallet, an issuer's rescue, a fork's
    keys): an engineer reviews and rejects or carries them out outside the engine."""
    NONE = "NONE"


NATIVE_LOG_INDEX = -1
"""Log index used for a native-value transfer (the transaction's own ``value``)."""


def internal_log_index(n: int) -> int:
    """Log index of the ``n``-th (from 1) native value transfer made by a contract inside the
    transaction (a call frame with value, in call order): -2, -3, ..."""
    if n < 1:
        raise ValueError("internal transfers count from 1")
    return NATIVE_LOG_INDEX - n


def deposit_key(chain: str, tx_hash: str, log_index: int | None) -> str:
    """The identity of one deposit. ``None`` means the claim did not resolve to a transfer.

    Suffix: ``x`` no transfer, ``n`` the transaction's own value, ``i<k>`` the k-th internal value
    transfer, else the log index (EVM) or output index (Bitcoin).
    """
    if log_index is None:
        suffix = "x"
    elif log_index == NATIVE_LOG_INDEX:
        suffix = "n"
    elif log_index < NATIVE_LOG_INDEX:
        suffix = f"i{NATIVE_LOG_INDEX - log_index}"
    else:
        suffix = str(log_index)
    return f"{chain}:{tx_hash.lower()}:{suffix}"


def case_id_for(chain: str, tx_hash: str, log_index: int | None) -> str:
    """Workflow id and case id: one case per deposit."""
    return "case-" + deposit_key(chain, tx_hash, log_index).replace(":", "-")


TOKEN_AMOUNT = N_("{amount} token {address}")
"""An amount of a token that has no symbol here (``Transfer.label`` is ``token <address>``)."""


class Transfer(BaseModel):
    """A value movement found in a transaction. ``token_address`` is None for the native asset.

    ``log_index``: the log index of an ERC-20/TRC-20 ``Transfer``, ``NATIVE_LOG_INDEX`` for the
    transaction's own value, ``internal_log_index(k)`` for value forwarded by a contract, the output
    index on Bitcoin. ``memo``: XRP ``DestinationTag`` or a Bitcoin OP_RETURN payload, as text.
    """

    chain: str
    tx_hash: str
    log_index: int
    token_address: str | None
    asset: str | None
    decimals: int | None
    sender: str
    recipient: str
    amount: BaseUnits
    memo: str | None = None

    @property
    def native(self) -> bool:
        return self.token_address is None

    @property
    def key(self) -> str:
        return deposit_key(self.chain, self.tx_hash, self.log_index)

    @property
    def asset_key(self) -> str:
        """The asset in prices and the ledger: its listed symbol, else ``<chain>:<token address>`` (an
        unlisted token's own symbol proves nothing: anyone can deploy a token called USDT)."""
        if self.asset is not None:
            return self.asset
        return f"{self.chain}:{(self.token_address or 'native').lower()}"

    @property
    def label(self) -> str:
        """The asset as a reader knows it: its symbol, else ``token <address>``."""
        return self.asset or f"token {self.token_address}"

    def amount_text(self, value: int | None = None) -> str:
        """``value`` (default: the amount) of this transfer's asset, e.g. ``100.5 USDT``."""
        return amount_text(self.amount if value is None else value, self.decimals, self.label)

    def amount_message(self, value: int | None = None) -> str:
        """``value`` (default: the amount) of this transfer's asset for a reader (``1,234.5 USDT``, ``1.234,5
        USDT``): the number formatted for their language, a token without a symbol named in it. Formats with
        Babel: never in a workflow."""
        base_units = self.amount if value is None else value
        if self.asset is None:
            number: Any = str(base_units) if self.decimals is None else amount(base_units, self.decimals)
            return Message(TOKEN_AMOUNT, amount=number, address=str(self.token_address))
        if self.decimals is None:
            return f"{base_units} {self.asset}"
        return AmountText(base_units, self.decimals, self.asset)


class TraceResult(BaseModel):
    """What a chain says about a transaction."""

    chain: str | None
    tx_hash: str
    found: bool
    succeeded: bool | None = None
    block_number: int | None = None
    confirmations: int = 0
    required_confirmations: int = 0
    block_time_ms: int = 0
    block_timestamp: datetime | None = None
    """When the transaction's block was made (UTC, as the chain says); None if not mined or not read."""
    transfers: list[Transfer] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    """What the adapter noticed that a reader should know (e.g. an XRP partial payment delivered less
    than its ``Amount``)."""
    unread: list[Text] = Field(default_factory=list)
    """Parts of the transaction the adapter could not read or did not understand where value may have moved
    (a receipt without a status, a contract type it does not know, a log it could not decode), in plain
    words. Never silently "no deposit": the classifier sends a case with any of these to an engineer and
    says why on the case."""

    @property
    def confirmed(self) -> bool:
        return self.found and self.confirmations >= self.required_confirmations

    def transfer_at(self, log_index: int | None) -> Transfer | None:
        return next((t for t in self.transfers if t.log_index == log_index), None)


class TokenRisk(StrEnum):
    """Why a token must not be recovered automatically."""

    TRANSFER_REVERTS = "TRANSFER_REVERTS"
    """A dry run of the sweep (``transfer`` from the deposit address) reverts."""
    FEE_ON_TRANSFER = "FEE_ON_TRANSFER"
    """The dry run delivers less than it was told to move."""
    REBASING = "REBASING"
    """The holder's balance changed without a ``Transfer`` to or from it."""
    NO_PRICE = "NO_PRICE"
    NOT_A_TOKEN = "NOT_A_TOKEN"
    """No code at the address, or it does not answer ``balanceOf``/``decimals``."""
    UNVERIFIED = "UNVERIFIED"
    """A check could not run (the node lacks the method or the history): not ruled out, so not automatic."""


class TokenFinding(BaseModel):
    risk: TokenRisk
    detail: Text
    """What the check saw, in words: the reason of a case sent to an engineer quotes it."""


class DepositFacts(BaseModel):
    """Everything the classifier needs, gathered by an activity so classification stays pure."""

    claimant_user_id: str
    trace: TraceResult
    claimant_vip: bool = False
    """The claimant is a VIP user: a manual case starts at the VIP desk."""
    deposit: Transfer | None = None
    owner_user_id: str | None = None
    recipient_is_contract: bool = False
    sender_is_contract: bool = False
    """The deposit's sender has code on its chain: it cannot sign an ownership proof, nor be refunded."""
    signer_holds_key: bool = False
    credited_here: bool = False
    credited_chains: list[str] = Field(default_factory=list)
    already_credited: bool = False
    internal_transfer: bool = False
    """Sent by the exchange's own hot or gas wallet (a gas top-up, for example): never a deposit."""
    engineers: list[str] = Field(default_factory=list)
    """The roster's names (what cases started before the roster's rules check)."""
    approval_policy: ApprovalPolicy | None = None
    """The roster with tiers and limits, four-eyes and attestation rules, as the worker is configured."""
    family: str = "evm"
    vanished_from_block: int | None = None
    """The deposit was seen in this block earlier and is gone now (a reorganisation)."""
    deprecated_address: bool = False
    shared_address: bool = False
    """The recipient is the exchange's shared deposit address (users told apart by memo)."""
    memo_owner_user_id: str | None = None
    recipient_token_contract: bool = False
    """The recipient is a token contract (often the very token that was sent)."""
    rescue_route: str | None = None
    contract_on_chains: list[str] = Field(default_factory=list)
    """Chains where the recipient address has contract code."""
    fork_of: str | None = None
    minimum: BaseUnits | None = None
    uncredited_total: BaseUnits | None = None
    """The address's balance of the asset not yet swept (for below-minimum deposits)."""
    token_symbol: str | None = None
    token_findings: list[TokenFinding] = Field(default_factory=list)
    priced: bool = False
    """Whether an unlisted token has a USD price (listed assets are priced by configuration)."""


class MessageRef(BaseModel):
    """A text for a user as a message id and its values, rendered in the reader's language when read
    (``recovery.i18n.render_ref``; docs/i18n.md). The id is marked with ``N_`` where it is written.

    Each value is JSON: text or an integer as they are, or a tagged value formatted per language:
    ``{"datetime": "2027-01-13T10:00:00+00:00"}``, ``{"date": "2027-01-13"}``, ``{"amount": {"base_units":
    "100500000", "decimals": 6, "asset": "USDT"}}`` (never a float), ``{"decimal": "2.5"}`` (a USD figure, a
    number of whole units), ``{"percent": "2.5"}``, or ``{"message": {...}}`` (a ref inside a sentence). Build the
    tagged ones with :func:`ref_datetime`, :func:`ref_date`, :func:`ref_amount`, :func:`ref_decimal`,
    :func:`ref_message`. Workflow-safe: renders nothing itself."""

    msgid: str
    params: dict[str, Any] = Field(default_factory=dict)


def ref_datetime(value: datetime) -> dict[str, str]:
    return {"datetime": value.isoformat()}


def ref_date(value: date) -> dict[str, str]:
    return {"date": (value.date() if isinstance(value, datetime) else value).isoformat()}


def ref_amount(base_units: int, decimals: int | None, asset: str) -> dict[str, Any] | str:
    """An amount of ``asset`` in base units; without known decimals, the base units as text."""
    if decimals is None:
        return f"{base_units} {asset}"
    return {"amount": {"base_units": str(base_units), "decimals": decimals, "asset": asset}}


def ref_decimal(value: Decimal) -> dict[str, str]:
    """A number (a USD figure, whole units), formatted per language when read with every decimal it has
    (``Decimal("25.00")`` reads ``25.00``, ``25,00``)."""
    return {"decimal": str(value)}


def ref_message(ref: MessageRef) -> dict[str, Any]:
    return {"message": ref.model_dump(mode="json")}


RefValue = str | int | tuple[str, Any]
"""A value in a message ref: text or an integer as it is, or its English with a tagged value (:func:`ref_amount`,
:func:`ref_decimal`, ...) or with a nested :class:`MessageRef`."""


def text_ref(msgid: str, /, **params: RefValue) -> tuple[str, MessageRef]:
    """A text's English and its message ref (the English is the ref rendered in English): ``msgid`` filled in
    with each value's English, and the values as the ref keeps them (plain, tagged, or a nested ref). Renders
    nothing: workflow code builds its texts with it."""
    english = {name: value[0] if isinstance(value, tuple) else value for name, value in params.items()}
    values = {
        name: (ref_message(value[1]) if isinstance(value[1], MessageRef) else value[1])
        if isinstance(value, tuple)
        else value
        for name, value in params.items()
    }
    return msgid.format_map(english), MessageRef(msgid=msgid, params=values)


def joined_refs(values: Sequence[RefValue], msgid: str) -> RefValue:
    """Texts one after the other as ``msgid`` (``{first}; {second}``, ``{first} {second}``) refs nested by halves:
    as deep as the logarithm of the number of texts, not the number (a transaction can have hundreds of parts not
    read, and a ref nested hundreds deep is past what pydantic serializes)."""
    if len(values) == 1:
        return values[0]
    middle = len(values) // 2
    return text_ref(msgid, first=joined_refs(values[:middle], msgid), second=joined_refs(values[middle:], msgid))


class Classification(BaseModel):
    pattern: Pattern
    recoverable: bool
    route: Route
    reason: str
    action: Action = Action.SWEEP
    text: MessageRef | None = None
    """The reason as an id and values (``reason`` stays its English); None where it is English only."""


class Quote(BaseModel):
    """The fee for one recovery, in the deposit's asset base units."""

    asset: str
    decimals: int
    amount: BaseUnits
    amount_usd: Decimal
    percent_bps: int
    fee_usd: Decimal
    fee: BaseUnits
    gas_estimate: BaseUnits
    net_estimate: BaseUnits
    min_fee_usd: Decimal | None = None
    """The policy's bounds on the fee (an engineer's override stays within them); None on old quotes."""
    max_fee_usd: Decimal | None = None
    fee_overridden: bool = False
    """The fee is an engineer's override (who and why: the case's audit and timeline)."""
    policy: str = "default"
    """The fee policy applied: a pattern's own, or ``default``."""
    basis: Text = ""
    """The policy in words ("free up to 100 USD, then 5% of the value above it (at most 500 USD)")."""
    network_cost: str = "passed"
    """``passed``: ``gas_estimate`` is charged to the user; ``absorbed``: the exchange pays it (0 charged)."""
    network_cost_estimate: BaseUnits = 0
    """The expected network cost in the asset's base units, whoever pays it."""
    vip_discount_bps: int = 0
    eligible_from_usd: Decimal | None = None
    """Work that needs an engineer is done only above this value."""
    acceptance_required: bool = False
    """The user must accept this quote before anything is signed."""
    price_usd: Decimal | None = None
    """USD per whole unit of the asset the quote used (None on quotes made before it was recorded)."""
    waived_by: int | None = None
    """A platform-fault incident waives this quote's fee: ``fee`` is 0, ``waived_fee`` what it would be."""
    waived_fee: BaseUnits = 0

    def unit_price_usd(self) -> Decimal | None:
        """The price used: recorded, or implied by the quoted USD value (old quotes)."""
        if self.price_usd is not None:
            return self.price_usd
        if not self.amount:
            return None
        return self.amount_usd / (Decimal(self.amount) / Decimal(10) ** self.decimals)


class Settlement(BaseModel):
    """What was actually recovered and how it splits: recovered = credited + refunded + fee + gas."""

    recovered: BaseUnits
    credited: BaseUnits
    fee: BaseUnits
    gas: BaseUnits
    gas_native: BaseUnits
    refunded: BaseUnits = 0
    """Sent back to the deposit's sender (a refund; nothing is credited then)."""


class Refund(BaseModel):
    """A refund as sent on chain: ``amount`` of the deposit's asset back to ``to`` in ``tx_hash``."""

    to: str
    amount: BaseUnits
    tx_hash: str


class TimelineEvent(BaseModel):
    key: str
    status: CaseStatus
    message: str
    text: MessageRef | None = None
    """The message as an id and values, rendered in the reader's language (``message`` stays its English)."""
    due_at: datetime | None = None
    """When the case stops waiting for what the event asks of the user (an answer, a proof, an acceptance)."""


class SlaState(StrEnum):
    """Where a manual case stands against its service levels; moved by the workflow's own timers."""

    ON_TRACK = "on_track"
    DUE_SOON = "due_soon"
    TARGET_MISSED = "target_missed"
    BREACHED = "breached"


class CaseHandling(BaseModel):
    """Who handles a manual case and by when: its tier, its assignee, the approvals it needs, its SLA."""

    tier: Tier
    assigned_to: str | None = None
    approvals_needed: int = 1
    sla_started_at: datetime | None = None
    sla_target_at: datetime | None = None
    sla_deadline_at: datetime | None = None
    sla_state: SlaState = SlaState.ON_TRACK
    paused: bool = False
    """The SLA clock stands still while the case waits for the user."""


class CaseUpdate(BaseModel):
    """A change to the case record plus the timeline event that explains it (idempotent by key)."""

    case_id: str
    event: TimelineEvent
    pattern: Pattern | None = None
    reason: str | None = None
    reason_text: MessageRef | None = None
    """The reason as an id and values, when ``reason`` is given and has one."""
    chain: str | None = None
    asset: str | None = None
    token_address: str | None = None
    decimals: int | None = None
    amount: BaseUnits | None = None
    quote: Quote | None = None
    handling: CaseHandling | None = None
    topup_tx_hash: str | None = None
    sweep_tx_hash: str | None = None


class SignedTx(BaseModel):
    idempotency_key: str
    chain: str
    tx_hash: str | None
    """None when nothing had to be sent (for example, the address already had gas)."""


class TxReceipt(BaseModel):
    chain: str
    tx_hash: str
    succeeded: bool
    block_number: int
    gas_used: BaseUnits
    effective_gas_price: BaseUnits
    confirmations: int
    required_confirmations: int


class NewCase(BaseModel):
    """A case about to be opened, by a user's claim or by the deposit scanner: one case per deposit.

    ``deposit`` is the transfer the claim resolved to (None when it resolved to none of the claimant's:
    the workflow looks again). Build it with :meth:`of` so that the case id follows one rule.
    """

    case_id: str
    user_id: str
    chain: str | None
    tx_hash: str
    log_index: int | None
    deposit: Transfer | None = None

    @classmethod
    def of(cls, *, user_id: str, tx_hash: str, deposit: Transfer | None, chain: str | None = None) -> NewCase:
        """The case of ``deposit`` in transaction ``tx_hash``; without a deposit, the case of the whole
        transaction on ``chain`` (``any`` when the chain is unknown too)."""
        if deposit is not None:
            return cls(
                case_id=case_id_for(deposit.chain, tx_hash, deposit.log_index),
                user_id=user_id,
                chain=deposit.chain,
                tx_hash=tx_hash,
                log_index=deposit.log_index,
                deposit=deposit,
            )
        return cls(
            case_id=case_id_for(chain or "any", tx_hash, None),
            user_id=user_id,
            chain=chain,
            tx_hash=tx_hash,
            log_index=None,
        )
