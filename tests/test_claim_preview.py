"""The answer at claim time (``services.claim_preview``): each route the workflow can take, worked out ahead
of it from the same facts, classifier and fee policy, with scripted chains and a real database; and the
``201`` of ``POST /v1/cases`` that carries it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from api.previews import get_claim_previewer
from chains.endpoints import RpcError, RpcUnavailable
from chains.signer import GAS_WALLET_PATH, HOT_WALLET_PATH
from fees.prices import StaticPrices
from recovery.models import Pattern, TraceResult, Transfer
from recovery.settings import USDT_BSC, Settings, dev_chains
from services.claim_preview import (
    PENDING_LIMIT_DAYS,
    ClaimPreview,
    ClaimPreviewer,
    ClaimRoute,
    StoredCustody,
    UserStepKind,
    preview_approval_policy,
)
from services.evm_chains import EvmChains
from services.facts import CodeAhead, FactGatherer, SignerCustody
from store import db, schema, users
from tests.api_fixtures import TX, Api
from tests.db_fixtures import MnemonicSigner, deposit_path_for_tests
from workflows.case_workflow import PENDING_LIMIT

NOW = datetime(2027, 1, 4, 10, 0, tzinfo=UTC)
"""A Monday: the SLA's working days count from here (US holidays: 18 Jan and 15 Feb 2027)."""
SENDER = "0x" + "11" * 20
SECRET_URL = "https://bsc.example/v3/abcdefghijklmnopqrstuvwx"


# --- scripted chains ------------------------------------------------------------------------------


@dataclass
class FakeRpc:
    chain: FakeChain

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any] | None]]) -> list[Any]:
        self.chain.calls += len(calls)
        await self.chain.answer()
        return [("0x6001" if self.chain.has_code(params[0]) else "0x") for _, params in calls if params]


@dataclass
class FakeChain:
    """One EVM chain's node: which addresses have code; optionally down or slow."""

    config: Any
    code: set[str] = field(default_factory=set)
    error: Exception | None = None
    delay: float = 0.0
    calls: int = 0

    def __post_init__(self) -> None:
        self.rpc = FakeRpc(self)

    def has_code(self, address: str) -> bool:
        return address.lower() in self.code

    async def answer(self) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error

    async def is_contract(self, address: str) -> bool:
        self.calls += 1
        await self.answer()
        return self.has_code(address)


class FakeChains:
    """Stands in for :class:`services.evm_chains.EvmChains`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.chains = {c.name: FakeChain(c) for c in settings.chains if c.family == "evm"}

    def config(self, name: str) -> Any:
        return self.settings.require_chain(name)

    def get(self, name: str) -> FakeChain:
        return self.chains[name]

    def all(self) -> list[FakeChain]:
        return list(self.chains.values())


# --- the world ------------------------------------------------------------------------------------


@dataclass
class World:
    settings: Settings
    engine: Engine
    chains: FakeChains
    addresses: dict[str, str]

    def previewer(self, *, budget: timedelta = timedelta(seconds=5), **overrides: Any) -> ClaimPreviewer:
        settings = self.settings.model_copy(update=overrides) if overrides else self.settings
        return ClaimPreviewer(
            settings=settings,
            engine=self.engine,
            chains=cast(EvmChains, self.chains),
            budget=budget,
            clock=lambda: NOW,
        )

    async def preview(
        self,
        amount_usdt: int | Decimal = 100,
        *,
        to: str = "alice",
        claimant: str = "alice",
        confirmations: int = 3,
        previewer: ClaimPreviewer | None = None,
        trace: TraceResult | None = None,
        locale: str = "en",
    ) -> ClaimPreview:
        deposit = usdt(self.addresses[to], amount_usdt)
        trace = trace or found(deposit, confirmations=confirmations)
        return await (previewer or self.previewer()).preview(
            case_id="case-x", user_id=claimant, trace=trace, deposit=deposit, locale=locale
        )


def usdt(recipient: str, amount: int | Decimal, *, sender: str = SENDER, log_index: int = 7) -> Transfer:
    return Transfer(
        chain="bsc",
        tx_hash=TX,
        log_index=log_index,
        token_address=USDT_BSC,
        asset="USDT",
        decimals=18,
        sender=sender,
        recipient=recipient,
        amount=int(Decimal(amount).scaleb(18)),
    )


def found(*transfers: Transfer, confirmations: int = 3) -> TraceResult:
    return TraceResult(
        chain="bsc",
        tx_hash=TX,
        found=True,
        succeeded=True,
        block_number=100,
        confirmations=confirmations,
        required_confirmations=3,
        block_time_ms=1000,
        transfers=list(transfers),
    )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'w.db'}", chains=dev_chains())
    engine = db.make_engine(settings.database_url or "")
    schema.init_db(engine)
    addresses: dict[str, str] = {}
    with Session(engine) as session:
        for name in ("alice", "bob"):
            user, _ = users.create_user(session, user_id=name, signer=MnemonicSigner(), path_for=deposit_path_for_tests)
            addresses[name] = user.deposit_address
    yield World(settings=settings, engine=engine, chains=FakeChains(settings), addresses=addresses)
    engine.dispose()


# --- the routes -----------------------------------------------------------------------------------


async def test_the_code_lookups_started_ahead_are_the_ones_the_answer_uses(world: World) -> None:
    deposit = usdt(world.addresses["alice"], 100)
    trace = found(deposit)
    previewer = world.previewer()
    ahead = previewer.look_ahead(trace)
    await asyncio.sleep(0.01)  # the look-ahead runs while the caller reads the database
    asked = world.chains.get("bsc").calls
    assert asked > 0
    answer = await previewer.preview(case_id="case-x", user_id="alice", trace=trace, deposit=deposit, ahead=ahead)
    ahead.cancel()
    assert answer.route is ClaimRoute.AUTOMATIC
    assert world.chains.get("bsc").calls == asked  # taken, not asked again
    plain = await world.preview(100)
    assert plain.model_dump(exclude={"as_of"}) == answer.model_dump(exclude={"as_of"})


async def test_the_answer_is_in_the_readers_language(world: World) -> None:
    english = await world.preview(30_000, confirmations=1)
    german = await world.preview(30_000, confirmations=1, locale="de")
    assert german.route is english.route and german.pattern is english.pattern and german.sla == english.sla
    assert german.reason is not None and english.reason is not None
    assert german.reason != english.reason and "30.000,00 USD" in german.reason  # the de number format, cents kept
    assert german.next != english.next and "Januar 2027" in german.next  # the SLA dates, in German
    assert "Bestätigung" in german.next and all(c not in english.caveats for c in german.caveats)


async def test_automatic_wrong_network(world: World) -> None:
    answer = await world.preview(100)
    assert answer.available and answer.route is ClaimRoute.AUTOMATIC
    assert answer.pattern is Pattern.WRONG_NETWORK_SAME_KEY
    assert answer.reason is not None and "recovered automatically" in answer.reason
    assert answer.user_steps == [] and answer.sla is None
    assert answer.confirmations is not None and answer.confirmations.remaining == 0
    fee = answer.fee
    assert fee is not None
    assert (fee.policy, fee.network_cost, fee.acceptance_required) == ("default", "passed", False)
    assert fee.value_usd == Decimal("100.00") and fee.fee_usd == Decimal("10.00")  # 5 % is under the 10 USD minimum
    assert fee.fee == 10 * 10**18 and fee.acceptance_above_usd == Decimal("1000")
    assert "5% of the value" in fee.basis
    assert "automatically" in answer.next and "Nothing for you to do." in answer.next
    assert any("Provisional" in c for c in answer.caveats)
    assert any("network cost" in c for c in answer.caveats)
    # one batch on the deposit chain (recipient and sender); the other chains' code is read by the classifier only
    # where the exchange does not hold the address's key, so they are not asked
    assert [c.calls for c in world.chains.all()] == [0, 2, 0]


async def test_engineer_by_pattern_with_its_sla(world: World) -> None:
    world.chains.get("bsc").code.add(world.addresses["alice"].lower())  # contract code at the address
    answer = await world.preview(1000)
    assert answer.available and answer.route is ClaimRoute.ENGINEER
    assert answer.pattern is Pattern.CONTRACT_RECIPIENT
    fee = answer.fee
    assert fee is not None and fee.policy == "CONTRACT_RECIPIENT" and fee.fee_usd == Decimal("200.00")
    assert fee.eligible_from_usd == Decimal("500") and fee.acceptance_required is False
    sla = answer.sla
    assert sla is not None
    # 15 and 30 working days from Monday 4 Jan 2027, skipping weekends, 18 Jan and 15 Feb (US holidays)
    assert sla.starts_at == NOW
    assert sla.target_at == datetime(2027, 1, 26, 10, tzinfo=UTC)
    assert sla.deadline_at == datetime(2027, 2, 17, 10, tzinfo=UTC)
    assert (sla.target_working_days, sla.deadline_working_days, sla.tier.value, sla.approvals_needed) == (
        15,
        30,
        "first_line",
        1,
    )
    assert "January 26, 2027" in answer.next and "February 17, 2027" in answer.next
    assert answer.user_steps == []


def _keyless_address(world: World) -> str:
    """carol's deposit address is a contract wallet whose key the exchange does not hold (stored without a
    derivation index)."""
    address = "0x" + "ca" * 20
    with Session(world.engine) as session:
        users.create_user(session, user_id="carol", signer=MnemonicSigner(), path_for=deposit_path_for_tests)
        users.add_deposit_address(session, user_id="carol", family="evm", address=address)
    world.addresses["carol"] = address
    return address


async def test_a_contract_wallet_without_a_held_key_is_for_an_engineer_off_engine(world: World) -> None:
    address = _keyless_address(world)
    world.chains.get("polygon").code.add(address.lower())
    answer = await world.preview(30_000, to="carol", claimant="carol")
    assert answer.route is ClaimRoute.ENGINEER and answer.pattern is Pattern.CONTRACT_RECIPIENT
    assert answer.reason is not None and "contract wallet on polygon" in answer.reason
    assert "by hand" in answer.next and answer.sla is not None
    # the workflow quotes nothing it cannot carry out: no value to hold against the proof's threshold
    assert answer.user_steps == []
    assert answer.fee is not None and answer.fee.policy == "CONTRACT_RECIPIENT"
    # the key is not held: every EVM chain is asked for code at the address
    assert [c.calls for c in world.chains.all()] == [1, 2, 1]


async def test_engineer_work_below_the_eligibility_floor_is_rejected(world: World) -> None:
    world.chains.get("bsc").code.add(world.addresses["alice"].lower())
    answer = await world.preview(300)
    assert answer.route is ClaimRoute.REJECTED and answer.pattern is Pattern.CONTRACT_RECIPIENT
    assert answer.reason is not None and "more than 500 USD" in answer.reason
    # worth less than the flat fee of 200 USD: too small, whatever the route (as the workflow checks first)
    tiny = await world.preview(100)
    assert tiny.route is ClaimRoute.REJECTED and tiny.pattern is Pattern.TOO_SMALL
    assert tiny.reason is not None and "does not cover the recovery fee of 200 USDT" in tiny.reason


async def test_above_the_automatic_limit_goes_to_an_engineer_with_proof_and_acceptance(world: World) -> None:
    answer = await world.preview(30_000)
    assert answer.route is ClaimRoute.ENGINEER and answer.pattern is Pattern.WRONG_NETWORK_SAME_KEY
    assert answer.reason is not None and "above the automatic limit of 20,000 USD" in answer.reason
    # the workflow's order: the ownership proof (while engineers review), then, once approved, the fee
    assert [s.kind for s in answer.user_steps] == [UserStepKind.PROVE_OWNERSHIP, UserStepKind.ACCEPT_FEE]
    assert SENDER in answer.user_steps[0].text and "/v1/cases/case-x/ownership-challenge" in answer.user_steps[0].text
    assert "/v1/cases/case-x/fee-acceptance" in answer.user_steps[1].text
    assert answer.fee is not None and answer.fee.acceptance_required is True and answer.fee.fee_usd == Decimal("500.00")
    assert answer.sla is not None and answer.sla.approvals_needed == 1
    assert "prove that you control" in answer.next and "accept the fee" in answer.next

    four_eyes = await world.preview(60_000)
    assert four_eyes.sla is not None and four_eyes.sla.approvals_needed == 2


async def test_a_contract_sender_cannot_prove_ownership(world: World) -> None:
    world.chains.get("bsc").code.add(SENDER)
    answer = await world.preview(30_000)
    assert answer.route is ClaimRoute.ENGINEER
    assert [s.kind for s in answer.user_steps] == [UserStepKind.ACCEPT_FEE]
    assert any("is a contract" in c for c in answer.caveats)


async def test_fee_acceptance_above_the_policy_threshold(world: World) -> None:
    below = await world.preview(1000)
    assert below.route is ClaimRoute.AUTOMATIC and below.user_steps == [] and below.fee is not None
    assert below.fee.acceptance_required is False  # at the threshold: not above it

    answer = await world.preview(5000)
    assert answer.route is ClaimRoute.AUTOMATIC and answer.fee is not None
    assert answer.fee.acceptance_required is True and answer.fee.fee_usd == Decimal("250.00")
    assert [s.kind for s in answer.user_steps] == [UserStepKind.ACCEPT_FEE]
    assert "accept" in answer.next

    never = world.previewer(fee=world.settings.fee.model_copy(update={"acceptance_above_usd": None}))
    quiet = await world.preview(5000, previewer=never)
    assert quiet.fee is not None and quiet.fee.acceptance_required is False and quiet.user_steps == []


async def test_ownership_proof_threshold_is_the_settings(world: World) -> None:
    strict = world.previewer(ownership_proof_usd=Decimal("10"), auto_limit_usd=Decimal("50"))
    answer = await world.preview(100, previewer=strict)
    assert answer.route is ClaimRoute.ENGINEER
    assert [s.kind for s in answer.user_steps] == [UserStepKind.PROVE_OWNERSHIP]
    lenient = world.previewer(ownership_proof_usd=None, auto_limit_usd=Decimal("50"))
    assert (await world.preview(100, previewer=lenient)).user_steps == []


async def test_unpriced_deposit_goes_to_an_engineer(world: World) -> None:
    unpriced = world.previewer(prices_usd={"ETH": Decimal("3000"), "BNB": Decimal("600")})
    answer = await world.preview(100, previewer=unpriced)
    assert answer.route is ClaimRoute.ENGINEER and answer.pattern is Pattern.WRONG_NETWORK_SAME_KEY
    assert answer.fee is not None and answer.fee.fee is None
    assert answer.fee.not_estimated == "there is no USD price for USDT"
    assert answer.reason is not None and "No fee can be quoted" in answer.reason
    assert answer.user_steps == []  # no value: no threshold can be said to apply


async def test_someone_elses_deposit_and_a_transaction_not_found_are_rejected(world: World) -> None:
    theirs = await world.preview(100, to="bob", claimant="alice")
    assert theirs.route is ClaimRoute.REJECTED and theirs.pattern is Pattern.NOT_YOUR_DEPOSIT
    assert theirs.fee is None and theirs.user_steps == []
    assert "without moving anything" in theirs.next

    nowhere = await world.previewer().preview(
        case_id="case-x", user_id="alice", trace=TraceResult(chain=None, tx_hash=TX, found=False), deposit=None
    )
    assert nowhere.route is ClaimRoute.REJECTED and nowhere.pattern is Pattern.NOT_FOUND
    assert nowhere.reason is not None and "was not found" in nowhere.reason and nowhere.confirmations is None


async def test_confirmations_pending_with_the_expected_time(world: World) -> None:
    answer = await world.preview(100, confirmations=1)
    assert answer.route is ClaimRoute.AUTOMATIC
    confirmations = answer.confirmations
    assert confirmations is not None
    assert (confirmations.have, confirmations.need, confirmations.remaining) == (1, 3, 2)
    assert confirmations.expected_at == NOW + timedelta(seconds=2)  # two more 1-second blocks
    assert "2 more confirmation(s) on bsc" in answer.next and "January 4, 2027, 10:00:02\u202fAM UTC" in answer.next


async def test_an_engineers_sla_starts_once_the_deposit_is_confirmed(world: World) -> None:
    slow = found(usdt(world.addresses["alice"], 30_000), confirmations=0).model_copy(
        update={"block_time_ms": 3_600_000, "required_confirmations": 20}
    )
    answer = await world.preview(30_000, trace=slow)
    assert answer.confirmations is not None and answer.sla is not None
    assert answer.confirmations.expected_at == NOW + timedelta(hours=20)
    assert answer.sla.starts_at == NOW + timedelta(hours=20)


async def test_a_transaction_not_in_a_block_is_undecided(world: World) -> None:
    pending = TraceResult(chain="bsc", tx_hash=TX, found=True, succeeded=None, required_confirmations=3)
    answer = await world.previewer().preview(case_id="case-x", user_id="alice", trace=pending, deposit=None)
    assert answer.available and answer.route is ClaimRoute.UNDECIDED and answer.pattern is None
    assert answer.confirmations is not None and answer.confirmations.expected_at is None
    assert f"{PENDING_LIMIT_DAYS} days" in answer.next
    assert [c.calls for c in world.chains.all()] == [0, 0, 0]  # nothing to look up yet


def test_pending_limit_is_the_workflows() -> None:
    assert timedelta(days=PENDING_LIMIT_DAYS) == PENDING_LIMIT


# --- when the preview cannot be made --------------------------------------------------------------


async def test_a_chain_down_gives_an_unavailable_answer_without_urls(world: World) -> None:
    world.chains.get("bsc").error = RpcUnavailable(f"bsc: all 1 endpoint(s) failed after 1 tries: {SECRET_URL}")
    answer = await world.preview(100)
    assert not answer.available and answer.route is None and answer.pattern is None
    assert answer.unavailable_reason is not None and "did not answer" in answer.unavailable_reason
    assert "GET /v1/cases/case-x" in answer.next
    text = answer.model_dump_json()
    assert "example" not in text and "Traceback" not in text and "RpcUnavailable" not in text


async def test_another_chain_down_leaves_the_answer_available(world: World) -> None:
    address = _keyless_address(world)
    world.chains.get("ethereum").code.add(address.lower())
    world.chains.get("polygon").error = RpcError(-32000, "boom")
    answer = await world.preview(1000, to="carol", claimant="carol")
    assert answer.available and answer.route is ClaimRoute.ENGINEER
    assert answer.reason is not None and "contract wallet on ethereum" in answer.reason


async def test_a_slow_chain_runs_out_the_budget(world: World) -> None:
    world.chains.get("bsc").delay = 5.0
    started = asyncio.get_running_loop().time()
    answer = await world.preview(100, previewer=world.previewer(budget=timedelta(milliseconds=200)))
    assert asyncio.get_running_loop().time() - started < 2
    assert not answer.available and answer.unavailable_reason is not None
    assert "took longer than 0.2 s" in answer.unavailable_reason


async def test_texts_are_scrubbed_of_endpoints_and_secrets(world: World) -> None:
    chains = [c.model_copy(update={"rpc_urls": [SECRET_URL]}) if c.name == "bsc" else c for c in dev_chains()]
    settings = world.settings.model_copy(update={"chains": chains})
    previewer = ClaimPreviewer(
        settings=settings,
        engine=world.engine,
        chains=cast(EvmChains, world.chains),
        clock=lambda: NOW,
        redact=lambda text: text.replace("alice", "***"),
    )
    # a reason that would quote an endpoint (a node's answer echoed into a finding, say)
    trace = TraceResult(chain=None, tx_hash=f"{SECRET_URL} alice", found=False)
    answer = await previewer.preview(case_id="case-x", user_id="alice", trace=trace, deposit=None)
    assert answer.reason is not None and "abcdefghijklmnop" not in answer.reason and "alice" not in answer.reason
    assert "https://bsc.example" in answer.reason  # reduced to scheme and host, as logs show endpoints


# --- the keys, without keys -----------------------------------------------------------------------


async def test_fact_gathering_without_the_signer(world: World) -> None:
    """The API's view of keys: the stored derivation index says the key is held; the exchange's own wallets
    are unknown, so no transfer counts as internal. The worker's view (the signer's) sees both."""
    signer = MnemonicSigner()
    hot = signer.address(HOT_WALLET_PATH)
    internal = usdt(world.addresses["alice"], 100, sender=hot)
    common: dict[str, Any] = {
        "settings": world.settings,
        "engine": world.engine,
        "prices": StaticPrices(world.settings.prices_usd),
        "chains": cast(EvmChains, world.chains),
        "policy": preview_approval_policy(world.settings),
    }
    for keys, internal_transfer in ((StoredCustody(), False), (SignerCustody(signer), True)):
        facts = await FactGatherer(keys=keys, **common).gather(
            user_id="alice", trace=found(internal), log_index=7, vanished_from_block=None
        )
        assert facts.signer_holds_key and facts.owner_user_id == "alice"
        assert facts.internal_transfer is internal_transfer
    assert SignerCustody(signer).own_wallets() == {hot.lower(), signer.address(GAS_WALLET_PATH).lower()}
    assert StoredCustody().sweep_destination(world.settings.chain("bsc")).startswith("0x")
    with pytest.raises(TypeError):
        FactGatherer(**common)


# --- through the API ------------------------------------------------------------------------------


def _use_fake_chains(api: Api, *, budget: timedelta = timedelta(seconds=5)) -> FakeChains:
    settings: Settings = api.app.state.settings
    chains = FakeChains(settings)
    previewer = ClaimPreviewer(settings=settings, engine=api.engine, chains=cast(EvmChains, chains), budget=budget)
    api.app.dependency_overrides[get_claim_previewer] = lambda: previewer
    return chains


async def test_the_201_carries_the_answer(api: Api) -> None:
    _use_fake_chains(api)
    api.fakes.trace_result = found(usdt(api.addresses["alice"], 100))
    response = await api.http.post("/v1/cases", json={"tx_hash": TX}, headers=api.auth())
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "RECEIVED" and body["case_id"].startswith("case-bsc-")
    answer = body["answer"]
    assert answer["available"] is True and answer["provisional"] is True
    assert (answer["route"], answer["pattern"]) == ("automatic", "WRONG_NETWORK_SAME_KEY")
    assert answer["confirmations"]["remaining"] == 0 and answer["sla"] is None
    assert answer["fee"]["estimated_fee"] == {"base_units": str(10 * 10**18), "decimal": "10"}
    assert answer["fee"]["estimated_fee_usd"] == "10.00" and answer["fee"]["value_usd"] == "100.00"
    assert answer["expected_steps"] == []
    assert len(api.fakes.starts) == 1  # the claim is filed as before


async def test_the_claim_is_filed_when_the_preview_fails(api: Api) -> None:
    chains = _use_fake_chains(api)
    chains.get("bsc").error = RpcUnavailable(f"bsc: {SECRET_URL} refused")
    api.fakes.trace_result = found(usdt(api.addresses["alice"], 100))
    response = await api.http.post("/v1/cases", json={"tx_hash": TX}, headers=api.auth())
    assert response.status_code == 201, response.text
    answer = response.json()["answer"]
    assert answer["available"] is False and "did not answer" in answer["unavailable_reason"]
    assert "example" not in response.text and len(api.fakes.starts) == 1 and len(api.case_rows()) == 1


async def test_the_claim_is_filed_when_the_preview_breaks(api: Api) -> None:
    class Broken:
        def look_ahead(self, trace: TraceResult) -> CodeAhead:
            return CodeAhead()

        def stored(self, session: Session, **_: Any) -> None:
            return None

        async def preview(self, **_: Any) -> ClaimPreview:
            await asyncio.sleep(0)
            return ClaimPreview.unavailable(why="down for a test", case_id="x", as_of=NOW)

    api.app.dependency_overrides[get_claim_previewer] = lambda: Broken()
    api.fakes.trace_result = found(usdt(api.addresses["alice"], 100))
    response = await api.http.post("/v1/cases", json={"tx_hash": TX}, headers=api.auth())
    assert response.status_code == 201 and response.json()["answer"]["unavailable_reason"] == "down for a test"


async def test_a_second_claim_does_not_wait_for_a_preview(api: Api) -> None:
    chains = _use_fake_chains(api)
    api.fakes.trace_result = found(usdt(api.addresses["alice"], 100))
    assert (await api.http.post("/v1/cases", json={"tx_hash": TX}, headers=api.auth())).status_code == 201
    calls = {c.config.name: c.calls for c in chains.all()}
    chains.get("ethereum").delay = chains.get("bsc").delay = 30
    again = await api.http.post("/v1/cases", json={"tx_hash": TX}, headers=api.auth())
    assert again.status_code == 409  # at once: neither the slow chains nor the look-ahead were waited for
    assert chains.get("ethereum").calls == calls["ethereum"]  # the preview's own lookups were not made
    assert chains.get("bsc").calls - calls["bsc"] <= 2  # only the look-ahead's code batch, started and dropped


async def test_the_answer_is_documented_in_openapi(api: Api) -> None:
    spec = (await api.http.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    created = spec["paths"]["/v1/cases"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    assert created["$ref"].endswith("/CaseCreated")
    assert "answer" in schemas["CaseCreated"]["required"]
    for name in ("ClaimAnswer", "ConfirmationsOut", "SlaOutlookOut", "FeeOutlookOut", "ExpectedStep"):
        undocumented = [f for f, prop in schemas[name]["properties"].items() if not prop.get("description")]
        assert not undocumented, f"{name}: {undocumented}"
    route = json.dumps(schemas["ClaimAnswer"]["properties"]["route"])
    for value in ("automatic", "engineer", "rejected", "undecided"):
        assert value in route
