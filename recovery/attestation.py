"""Attestations: proof of who sent an engineer's decision, checkable by the workflow without a secret.

The Temporal UI's update dialog sends no identity, so an engineer named in an update's input is only a
claim. The ``recovery`` CLI (and the staff API) sign ``(case id, engineer, action, expiry)`` with an
Ed25519 key only they hold; the workflow checks the signature with public keys from the worker's
configuration. Nothing secret is ever in a payload or in history. Pure and deterministic (workflow-safe).
"""

from __future__ import annotations

from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel

PREFIX = "misdeposit-recovery/decision/v1"


class Attestation(BaseModel):
    public_key: str
    """Hex of the signer's Ed25519 public key (which of the configured keys signed)."""
    expires_at: datetime
    signature: str
    """Hex of the Ed25519 signature of :func:`message`."""


def message(*, case_id: str, engineer: str, action: str, expires_at: datetime) -> bytes:
    return "\n".join((PREFIX, case_id, engineer, action, expires_at.isoformat())).encode()


def refuse_attestation(
    attestation: Attestation, *, keys: list[str], case_id: str, engineer: str, action: str, now: datetime
) -> str | None:
    """Why ``attestation`` does not prove that ``engineer`` sent ``action`` on ``case_id`` now, or None."""
    if attestation.public_key.lower() not in {k.lower() for k in keys}:
        return "The attestation is signed by a key this worker does not trust: check attestation_public_keys."
    if attestation.expires_at <= now:
        return f"The attestation expired at {attestation.expires_at.isoformat()}: send the decision again."
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(attestation.public_key))
        key.verify(
            bytes.fromhex(attestation.signature),
            message(case_id=case_id, engineer=engineer, action=action, expires_at=attestation.expires_at),
        )
    except (InvalidSignature, ValueError):
        return f"The attestation does not match this case, engineer and action ({case_id}, {engineer}, {action})."
    return None
