"""Every service a case needs, built once per worker over one engine, signer and set of chain clients."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from chains.signer import Signer
from fees.prices import PricePort
from recovery.settings import Settings
from services.approvals import approval_policy
from services.audit import AuditTrail
from services.broadcasting import Broadcaster
from services.calendar import SlaCalendar
from services.case_records import CaseRecords
from services.evm_chains import EvmChains
from services.facts import FactGatherer
from services.manual_executions import ExecutionVerifier
from services.nonces import NonceAllocator
from services.quotes import Quoter
from services.settlement import Settler
from services.signing import TransactionSigner
from services.tracing import Tracer


@dataclass(frozen=True)
class CaseServices:
    tracer: Tracer
    facts: FactGatherer
    quotes: Quoter
    signing: TransactionSigner
    broadcasting: Broadcaster
    settlement: Settler
    records: CaseRecords
    calendar: SlaCalendar
    audit: AuditTrail
    executions: ExecutionVerifier

    @classmethod
    def build(cls, *, settings: Settings, engine: Engine, signer: Signer, prices: PricePort) -> CaseServices:
        chains = EvmChains(settings)
        tracer = Tracer(settings)
        return cls(
            tracer=tracer,
            facts=FactGatherer(
                settings=settings,
                engine=engine,
                signer=signer,
                prices=prices,
                chains=chains,
                policy=approval_policy(settings),
            ),
            quotes=Quoter(settings=settings, signer=signer, prices=prices, chains=chains, engine=engine),
            signing=TransactionSigner(
                engine=engine, signer=signer, chains=chains, nonces=NonceAllocator(engine=engine, signer=signer)
            ),
            broadcasting=Broadcaster(engine=engine, chains=chains),
            settlement=Settler(engine=engine, prices=prices, chains=chains),
            records=CaseRecords(engine=engine),
            calendar=SlaCalendar(settings.sla),
            audit=AuditTrail(engine=engine),
            executions=ExecutionVerifier(settings=settings, engine=engine, signer=signer, tracer=tracer),
        )
