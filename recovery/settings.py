"""Configuration: embedded dev defaults, overridable by environment variables and a TOML file.

Environment variables use the prefix ``RECOVERY_`` and ``__`` for nesting
(``RECOVERY_API_PORT=9000``); ``DATABASE_URL`` is honoured as is. A TOML file is read from
``RECOVERY_CONFIG`` (default ``recovery.toml`` in the working directory) when it exists.
"""

from __future__ import annotations

import os
from datetime import date
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from recovery.errors import PermanentError
from recovery.i18n import Message
from recovery.models import Pattern
from recovery.roster import Engineer, Tier, UnattestedRule

ROOT = Path(__file__).resolve().parent.parent


class UnknownChain(PermanentError, ValueError):
    """A chain name that is not configured (or not of the family a caller needs)."""


class TokenConfig(BaseModel):
    symbol: str
    address: str
    decimals: int


ChainFamily = Literal["evm", "bitcoin", "tron", "xrpl"]


class ChainConfig(BaseModel):
    """One configured chain. ``credited_assets`` are the assets the exchange credits there.

    ``rpc_urls`` are the chain's endpoints, tried in order with failover: JSON-RPC URLs for ``evm``
    and ``xrpl``, Esplora base URLs (``https://host/api``) for ``bitcoin``, Tron HTTP API base URLs
    for ``tron``. Finality: ``confirmations`` blocks on ``evm`` and ``bitcoin``; solidified blocks on
    ``tron`` (``confirmations`` is then a lower bound); ``validated`` ledgers on ``xrpl``.
    """

    name: str
    family: ChainFamily = "evm"
    chain_id: int = 0
    """EVM chain id (signed transactions are bound to it); 0 for other families."""
    rpc_urls: list[str]
    confirmations: int = 12
    block_time_ms: int = 12_000
    native_symbol: str = "ETH"
    native_decimals: int = 18
    tokens: list[TokenConfig] = Field(default_factory=list)
    credited_assets: list[str] = Field(default_factory=list)
    deposit_minimums: dict[str, int] = Field(default_factory=dict)
    """Smallest credited deposit per asset symbol, in base units."""
    shared_deposit_address: str | None = None
    """Shared-address chains (XRP): the exchange's one deposit address; users are told apart by memo."""
    fork_of: str | None = None
    """A UTXO fork (BCH, LTC...) whose addresses look like those of the named chain: deposits to our
    addresses on that chain are ``UTXO_FORK`` cases."""
    rescue_routes: dict[str, str] = Field(default_factory=dict)
    """Token contract address -> how tokens sent to the contract itself can be rescued (its issuer's
    procedure). Without an entry such deposits are unrecoverable."""
    withdrawal_fees: dict[str, Decimal] = Field(default_factory=dict)
    """The exchange's withdrawal fee per asset symbol on this chain, in asset units (for fee policies that
    charge a multiple of it)."""
    hot_wallet: str | None = None
    """Where a recovery on a non-EVM chain must arrive (EVM chains use the signer's hot wallet): a manual
    execution recorded on this chain is checked against it."""
    rpc_retries: int = 2
    rpc_backoff_ms: int = 200
    rpc_timeout_ms: int = 10_000
    trace_internal: bool = True
    """Read native value forwarded by contracts with ``debug_traceTransaction`` (EVM, if the node has it)."""

    @model_validator(mode="after")
    def _check_family(self) -> ChainConfig:
        if self.family == "evm" and self.chain_id <= 0:
            raise ValueError(f"chain {self.name!r}: an evm chain needs its chain_id")
        if not self.rpc_urls:
            raise ValueError(f"chain {self.name!r}: configure at least one endpoint in rpc_urls")
        return self

    def token_by_address(self, address: str) -> TokenConfig | None:
        wanted = address.lower()
        return next((t for t in self.tokens if t.address.lower() == wanted), None)

    def token_by_symbol(self, symbol: str) -> TokenConfig | None:
        return next((t for t in self.tokens if t.symbol == symbol), None)


NetworkCost = Literal["passed", "absorbed"]


class FeePolicyConfig(BaseModel):
    """How one kind of recovery is priced. The fee is, in this order: ``flat_usd`` if set; else
    ``withdrawal_fee_multiple`` times the asset's withdrawal fee (the chain's ``withdrawal_fees``) if set;
    else ``percent_bps`` of the USD value above ``free_usd`` (nothing at or below it). Then clamped to
    [``min_usd``, ``max_usd``] (a free recovery stays free), then a VIP claimant's ``vip_discount_bps``
    off. The network cost is ``passed`` to the user or ``absorbed`` by the exchange."""

    model_config = ConfigDict(extra="forbid")

    percent_bps: int = Field(default=500, ge=0, le=10_000)
    free_usd: Decimal = Field(default=Decimal("0"), ge=0)
    min_usd: Decimal | None = Field(default=Decimal("10"), ge=0)
    max_usd: Decimal | None = Field(default=Decimal("500"), ge=0)
    flat_usd: Decimal | None = Field(default=None, ge=0)
    """A flat fee in USD, paid in the deposit's asset at its price (KuCoin: 40 USDT for a missing memo)."""
    withdrawal_fee_multiple: int | None = Field(default=None, ge=1)
    """A multiple of the asset's withdrawal fee on its chain (Bybit: 5x)."""
    network_cost: NetworkCost = "passed"
    eligible_from_usd: Decimal | None = Field(default=None, ge=0)
    """Work that needs an engineer is done only above this USD value (Bybit: 500); automatic recoveries are
    open to any deposit that covers its fee and gas."""
    vip_discount_bps: int = Field(default=0, ge=0, le=10_000)
    acceptance_above_usd: Decimal | None = Field(default=None, ge=0)
    """Above this USD value the user must accept the quote before anything is signed (None: never)."""

    @model_validator(mode="after")
    def _bounds_in_order(self) -> FeePolicyConfig:
        if self.min_usd is not None and self.max_usd is not None and self.min_usd > self.max_usd:
            raise ValueError("a fee policy's min_usd must not be above its max_usd")
        return self


def dev_fee_policies() -> dict[str, FeePolicyConfig]:
    """What exchanges publish, one per kind of case (README: "Fee policies")."""
    engineers_time = FeePolicyConfig(
        flat_usd=Decimal("200"),
        min_usd=None,
        max_usd=None,
        eligible_from_usd=Decimal("500"),
        acceptance_above_usd=Decimal("1000"),
    )
    return {
        "UNLISTED_TOKEN": FeePolicyConfig(
            percent_bps=500,
            free_usd=Decimal("100"),
            min_usd=None,
            max_usd=Decimal("500"),
            acceptance_above_usd=Decimal("1000"),
        ),
        "MISSING_OR_WRONG_MEMO": FeePolicyConfig(
            flat_usd=Decimal("40"), min_usd=None, max_usd=None, acceptance_above_usd=Decimal("1000")
        ),
        "BELOW_MINIMUM": FeePolicyConfig(
            withdrawal_fee_multiple=5, min_usd=None, max_usd=None, acceptance_above_usd=Decimal("1000")
        ),
        "DEPRECATED_ADDRESS": FeePolicyConfig(
            percent_bps=0, min_usd=None, max_usd=None, network_cost="absorbed", acceptance_above_usd=None
        ),
        "CONTRACT_RECIPIENT": engineers_time,
        "TOKEN_CONTRACT_RECIPIENT": engineers_time,
        "UTXO_FORK": engineers_time,
    }


USDT_ETHEREUM = "0xdAC17F958D2ee523a2206206994597C13D831ec7"
USDT_BSC = "0x55d398326f99059fF775485246999027B3197955"
USDT_POLYGON = "0xc2132D05D31c914a87C6611C10748AEb04B58e8F"


def dev_chains() -> list[ChainConfig]:
    return [
        ChainConfig(
            name="ethereum",
            chain_id=1,
            rpc_urls=["http://127.0.0.1:8545"],
            confirmations=3,
            block_time_ms=1000,
            native_symbol="ETH",
            tokens=[TokenConfig(symbol="USDT", address=USDT_ETHEREUM, decimals=6)],
            credited_assets=["ETH", "USDT"],
            withdrawal_fees={"USDT": Decimal("5"), "ETH": Decimal("0.001")},
        ),
        ChainConfig(
            name="bsc",
            chain_id=56,
            rpc_urls=["http://127.0.0.1:8546"],
            confirmations=3,
            block_time_ms=1000,
            native_symbol="BNB",
            tokens=[TokenConfig(symbol="USDT", address=USDT_BSC, decimals=18)],
            credited_assets=[],
            withdrawal_fees={"USDT": Decimal("1"), "BNB": Decimal("0.0005")},
        ),
        ChainConfig(
            name="polygon",
            chain_id=137,
            rpc_urls=["http://127.0.0.1:8547"],
            confirmations=3,
            block_time_ms=1000,
            native_symbol="POL",
            tokens=[TokenConfig(symbol="USDT", address=USDT_POLYGON, decimals=6)],
            credited_assets=["POL", "USDT"],
            withdrawal_fees={"USDT": Decimal("1"), "POL": Decimal("0.1")},
        ),
    ]


class ReconciliationConfig(BaseModel):
    """When the daily fee reconciliation Schedule runs (``reconcile-fees``)."""

    model_config = ConfigDict(extra="forbid")

    hour: int = Field(default=3, ge=0, le=23)
    minute: int = Field(default=30, ge=0, le=59)
    time_zone: str = "UTC"
    """An IANA zone (``Europe/Malta``): the hour is local there, daylight saving included."""

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}: use an IANA name such as UTC or Europe/Malta") from None
        return value


class SlaConfig(BaseModel):
    """Service levels of manual cases, in working days from the moment a case first waits for an engineer."""

    target_working_days: int = Field(default=15, ge=1)
    deadline_working_days: int = Field(default=30, ge=1)
    reminder_working_days: list[int] = Field(default_factory=lambda: [5, 10])
    due_soon_working_days: int = Field(default=3, ge=0)
    breach_extension_working_days: int = Field(default=5, ge=1)
    """After a breach the user is told to expect an answer within this many more working days."""
    info_timeout_working_days: int = Field(default=10, ge=1)
    """A user who does not answer an engineer's question within this many working days: the case expires."""
    fee_acceptance_working_days: int = Field(default=5, ge=1)
    """A quote the user must accept and has not answered within this many working days expires the case."""
    weekend: list[int] = Field(default_factory=lambda: [5, 6])
    """Weekdays that are not working days (Monday is 0)."""
    holiday_country: str | None = "US"
    """ISO country code whose public holidays are not working days (the ``holidays`` package); None: none."""
    holiday_subdivision: str | None = None
    extra_holidays: list[date] = Field(default_factory=list)
    drill_day_seconds: int | None = Field(default=None, ge=1)
    """A drill or demo: every day lasts this many seconds and every day is a working day (weekend and
    holidays ignored), so a whole SLA passes on a real Temporal server in minutes. None in production."""

    @model_validator(mode="after")
    def _deadline_after_target(self) -> SlaConfig:
        if self.deadline_working_days < self.target_working_days:
            raise ValueError("sla.deadline_working_days must not be before sla.target_working_days")
        return self


class RateLimitConfig(BaseModel):
    """Requests allowed per API token (per client address for requests without a valid token), in the
    ``limits`` notation: ``"10/minute;100/day"`` is both at once. Counted in each API process."""

    model_config = ConfigDict(extra="forbid")

    claims: str = "10/minute;200/day"
    """``POST /v1/cases`` per user token: each claim traces a transaction and may start a workflow."""
    writes: str = "30/minute"
    """Other writes per user token (answers, proofs, fee acceptance, feedback)."""
    reads: str = "600/minute"
    """Reads per user token."""
    staff: str = "1200/minute"
    """Any request per staff token."""
    anonymous: str = "60/minute"
    """Requests without a valid token, per client address (the gateway's, behind one)."""

    @field_validator("claims", "writes", "reads", "staff", "anonymous")
    @classmethod
    def _parses(cls, value: str) -> str:
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a rate limit: write e.g. '10/minute' or '10/minute;200/day'") from None
        return value


class TokenLifetimes(BaseModel):
    """How long a newly issued API token works, in days (None: until rotated or revoked)."""

    model_config = ConfigDict(extra="forbid")

    user_days: int | None = Field(default=365, ge=1, le=3650)
    staff_days: int | None = Field(default=90, ge=1, le=3650)


class NotificationsConfig(BaseModel):
    """Webhooks to the exchange's notification service, one per timeline event of a case (docs/notifications.md).
    The outbox is always written; without ``url`` nothing is sent."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    """Where to POST them (``https://notify.example/hooks/recovery``); None: delivery is off (``make run`` sets
    its dev receiver's)."""
    secret: SecretStr | None = None
    """The Standard Webhooks signing secret, ``whsec_`` and base64. Read by the delivery activity only: never
    logged, stored or put in a workflow's payloads."""
    backoff_base_seconds: float = Field(default=10.0, gt=0)
    """The longest wait after the first failure; it doubles with each failure (full jitter below it)."""
    backoff_cap_seconds: float = Field(default=1800.0, gt=0)
    """The longest wait between two attempts (a receiver back after an outage is tried within this)."""
    give_up_after_hours: float = Field(default=72.0, gt=0)
    """A notification failing this long after it was written (or redelivered) is dead; the ones after it of the
    same case with it (order per case). ``recovery notifications redeliver`` revives them."""
    poll_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    """How often the dispatcher looks for due notifications."""
    request_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    batch_size: int = Field(default=100, ge=1, le=10_000)
    """Cases taken per pass."""
    concurrency: int = Field(default=16, ge=1, le=256)
    """Cases delivered at once (each case's notifications one after the other, in order)."""
    dev_receiver_port: int = Field(default=8099, ge=1, le=65535)
    """``make run`` only: the port of its dev receiver (``recovery dev webhook-receiver``)."""

    @field_validator("url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("notifications.url must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _url_needs_secret(self) -> NotificationsConfig:
        if self.url is not None and self.secret is None:
            raise ValueError("notifications.url is set but notifications.secret is not: set both (whsec_...)")
        return self

    def secret_problem(self) -> str | None:
        """What is wrong with ``secret``, without its value (None: fine). Not a validator: pydantic's errors
        echo the refused input, and this one is a secret; the worker checks it at start instead."""
        if self.secret is None:
            return None
        return whsec_problem(self.secret.get_secret_value())


def whsec_problem(value: str) -> str | None:
    """Why ``value`` is no Standard Webhooks secret (``whsec_`` and the base64 of 16 bytes or more), or None."""
    import base64
    import binascii

    encoded = value.removeprefix("whsec_")
    try:
        decoded = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if not value.startswith("whsec_") or len(decoded) < 16:
        return "notifications.secret must be whsec_ followed by the base64 of at least 16 random bytes"
    return None


def dev_roster() -> list[Engineer]:
    return [
        Engineer(name="alice", tier=Tier.FIRST_LINE, approval_limit_usd=Decimal("1000")),
        Engineer(name="bob", tier=Tier.ENGINEERING, approval_limit_usd=Decimal("100000")),
        Engineer(name="chen", tier=Tier.EXPERT),
        Engineer(name="vera", tier=Tier.VIP, approval_limit_usd=Decimal("100000")),
    ]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RECOVERY_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    data_dir: Path = ROOT / ".data"
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("RECOVERY_DATABASE_URL", "DATABASE_URL", "database_url")
    )

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    task_queue: str = "recovery-cases"

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_workers: int = Field(default=2, ge=1)
    """API processes ``make run`` starts (``uvicorn --workers``): a burst of claims spreads over the cores (with
    one, the whole burst waited on one core). Rate limits are counted in each process."""
    ui_port: int = 8233
    max_body_bytes: int = 16_384
    rate_limits: RateLimitConfig = Field(default_factory=RateLimitConfig)
    tokens: TokenLifetimes = Field(default_factory=TokenLifetimes)

    chains: list[ChainConfig] = Field(default_factory=dev_chains)
    prices_usd: dict[str, Decimal] = Field(
        default_factory=lambda: {
            "USDT": Decimal("1"),
            "ETH": Decimal("3000"),
            "BNB": Decimal("600"),
            "POL": Decimal("0.5"),
        }
    )
    fee: FeePolicyConfig = Field(default_factory=lambda: FeePolicyConfig(acceptance_above_usd=Decimal("1000")))
    """The default fee policy (dev: 5 % of the value, 10 to 500 USD, network cost passed on, the user accepts
    quotes above 1,000 USD)."""
    fee_policies: dict[str, FeePolicyConfig] = Field(default_factory=dev_fee_policies)
    """Per pattern (its name, e.g. ``UNLISTED_TOKEN``), a whole policy instead of the default."""
    engineers: list[Engineer] = Field(default_factory=dev_roster)
    """The roster: objects with ``name``, ``tier``, ``approval_limit_usd``, ``user_id``; a plain name is a
    first-line engineer with no limit (older configurations)."""
    auto_limit_usd: Decimal | None = Decimal("20000")
    """An automatic pattern worth more than this goes to an engineer (None: no limit)."""
    four_eyes_usd: Decimal | None = Decimal("50000")
    """Above this a case needs two approvals by distinct engineers (None: never)."""
    ownership_proof_usd: Decimal | None = Decimal("1000")
    """Above this a manual case moves nothing until the claimant proves they control the sending address
    (an EIP-191 signature; None: never)."""
    ownership_challenge_minutes: int = Field(default=30, ge=1)
    """How long an ownership challenge's message may be signed."""
    sla: SlaConfig = Field(default_factory=SlaConfig)
    reconciliation: ReconciliationConfig = Field(default_factory=ReconciliationConfig)
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)
    unattested_approvals: UnattestedRule = "single"
    """Where an approval typed into the Temporal UI (no attestation) counts: ``single`` (cases needing one
    approval) or ``never``."""
    attestation_key_file: Path | None = None
    """The Ed25519 key with which the CLI and the staff API attest decisions (default
    ``<data_dir>/decision-attestation.key``, created on first use). The worker needs only its public half."""
    attestation_public_keys: list[str] = Field(default_factory=list)
    """Hex Ed25519 public keys the worker trusts; empty: the public half of ``attestation_key_file``."""

    signer_mnemonic: SecretStr | None = None
    seed_file: Path | None = None
    dev_faucet_enabled: bool = True

    @field_validator("fee_policies")
    @classmethod
    def _policies_name_patterns(cls, value: dict[str, FeePolicyConfig]) -> dict[str, FeePolicyConfig]:
        unknown = sorted(set(value) - {p.value for p in Pattern})
        if unknown:
            raise ValueError(
                f"fee_policies names no pattern {unknown}: use one of {', '.join(p.value for p in Pattern)}"
            )
        return value

    @field_validator("engineers", mode="before")
    @classmethod
    def _names_are_first_line(cls, value: object) -> object:
        if isinstance(value, list):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value

    @model_validator(mode="after")
    def _fill_paths(self) -> Settings:
        if self.database_url is None:
            self.database_url = f"sqlite:///{self.data_dir / 'recovery.db'}"
        if self.seed_file is None:
            self.seed_file = self.data_dir / "signer-seed"
        if self.attestation_key_file is None:
            self.attestation_key_file = self.data_dir / "decision-attestation.key"
        roster = [e.name for e in self.engineers]
        if len(roster) != len(set(roster)):
            raise ValueError(f"engineer names must be unique, got {roster}")
        names = [c.name for c in self.chains]
        if len(names) != len(set(names)):
            raise ValueError(f"chain names must be unique, got {names}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = Path(os.environ.get("RECOVERY_CONFIG", "recovery.toml"))
        toml = TomlConfigSettingsSource(settings_cls, toml_file=toml_path)
        return (init_settings, env_settings, toml, file_secret_settings)

    def chain(self, name: str) -> ChainConfig:
        for chain in self.chains:
            if chain.name == name:
                return chain
        raise KeyError(name)

    def fee_policy(self, pattern: str | None) -> tuple[str, FeePolicyConfig]:
        """The policy for a case of ``pattern`` and its name (the pattern, or ``default``)."""
        if pattern is not None and pattern in self.fee_policies:
            return pattern, self.fee_policies[pattern]
        return "default", self.fee

    def asset_decimals(self, chain: str, asset: str) -> int | None:
        """Decimals of a listed asset (the native coin or a configured token) on ``chain``; None otherwise."""
        try:
            config = self.chain(chain)
        except KeyError:
            return None
        if asset == config.native_symbol:
            return config.native_decimals
        token = config.token_by_symbol(asset)
        return token.decimals if token else None

    def require_chain(self, name: str, *, family: ChainFamily | None = None, doing: str = "") -> ChainConfig:
        """The chain named ``name``; :class:`UnknownChain` naming the configured ones otherwise, or when it
        is not of ``family`` (``doing`` says what only that family supports, e.g. ``"scanned"``)."""
        try:
            config = self.chain(name)
        except KeyError:
            raise UnknownChain(
                Message(
                    "unknown chain {name}: use one of {chains}", name=repr(name), chains=", ".join(self.chain_names)
                )
            ) from None
        if family is not None and config.family != family:
            raise UnknownChain(
                f"chain {name!r} is a {config.family} chain: only {family} chains are {doing or 'supported'}"
            )
        return config

    @property
    def chain_names(self) -> list[str]:
        return [c.name for c in self.chains]


@lru_cache
def get_settings() -> Settings:
    return Settings()
