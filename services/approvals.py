"""The approval rules the workflow enforces, from the worker's configuration: the roster, four-eyes and
automatic limits, and the public keys of the attesters it trusts."""

from __future__ import annotations

from recovery.roster import ApprovalPolicy
from recovery.settings import Settings
from services.attesting import load_or_create_key, public_hex


def trusted_keys(settings: Settings) -> list[str]:
    """``attestation_public_keys``; in development (none configured) the public half of the key file."""
    if settings.attestation_public_keys:
        return list(settings.attestation_public_keys)
    assert settings.attestation_key_file is not None
    return [public_hex(load_or_create_key(settings.attestation_key_file))]


def approval_policy(settings: Settings) -> ApprovalPolicy:
    return ApprovalPolicy(
        roster=list(settings.engineers),
        four_eyes_usd=settings.four_eyes_usd,
        auto_limit_usd=settings.auto_limit_usd,
        ownership_proof_usd=settings.ownership_proof_usd,
        unattested=settings.unattested_approvals,
        attestation_keys=trusted_keys(settings),
    )
