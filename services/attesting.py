"""Signing engineers' decisions (the private half of :mod:`recovery.attestation`), for the CLI and the
staff API. The key lives in a file only they read (mode 0600); the worker needs only its public half."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from recovery.attestation import Attestation, message

DEFAULT_TTL = timedelta(minutes=10)


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The key in ``path`` (raw 32 bytes, hex); a new one is written there the first time (dev)."""
    if path.exists():
        return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(path.read_text().strip()))
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(raw.hex())
    return key


def public_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


class Attester:
    def __init__(self, key: Ed25519PrivateKey, *, ttl: timedelta = DEFAULT_TTL) -> None:
        self._key = key
        self._ttl = ttl
        self.public_key = public_hex(key)

    def __repr__(self) -> str:
        return f"Attester(public_key={self.public_key[:16]}…)"

    def attest(self, *, case_id: str, engineer: str, action: str, now: datetime | None = None) -> Attestation:
        expires_at = ((now or datetime.now(UTC)) + self._ttl).replace(microsecond=0)
        signature = self._key.sign(message(case_id=case_id, engineer=engineer, action=action, expires_at=expires_at))
        return Attestation(public_key=self.public_key, expires_at=expires_at, signature=signature.hex())
