"""The only module that touches keys. Nothing here logs or returns a mnemonic or a private key."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from eth_account import Account
from eth_account.signers.local import LocalAccount

from recovery.settings import Settings

log = logging.getLogger(__name__)

Account.enable_unaudited_hdwallet_features()

HOT_WALLET_PATH = "m/44'/60'/1'/0/0"
GAS_WALLET_PATH = "m/44'/60'/2'/0/0"


def deposit_path(index: int) -> str:
    if not 0 <= index < 2**31:
        raise ValueError("deposit index out of range")
    return f"m/44'/60'/0'/0/{index}"


@runtime_checkable
class Signer(Protocol):
    """What the engine needs from a signer; an HSM/KMS-backed one can replace ``HDSigner``."""

    def address(self, path: str) -> str: ...

    def sign_evm(self, path: str, tx: Mapping[str, Any]) -> tuple[bytes, str]:
        """Sign a web3-style transaction dict; return the raw signed bytes and the 0x tx hash."""
        ...


class HDSigner:
    __slots__ = ("__mnemonic", "_accounts")

    def __init__(self, mnemonic: str) -> None:
        words = " ".join(mnemonic.split())
        # Fails early on a bad mnemonic, without echoing it.
        try:
            hot = Account.from_mnemonic(words, account_path=HOT_WALLET_PATH)
        except Exception:
            raise ValueError("invalid signer mnemonic") from None
        self.__mnemonic = words
        self._accounts: dict[str, LocalAccount] = {HOT_WALLET_PATH: hot}

    @classmethod
    def from_settings(cls, settings: Settings) -> HDSigner:
        if settings.signer_mnemonic is not None:
            return cls(settings.signer_mnemonic.get_secret_value())
        if settings.seed_file is None:
            raise ValueError("neither signer_mnemonic nor seed_file is configured")
        return cls(load_or_create_seed(settings.seed_file))

    def __repr__(self) -> str:
        return f"HDSigner(<{len(self._accounts)} derived accounts>)"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("HDSigner holds secrets and cannot be pickled")

    def _account(self, path: str) -> LocalAccount:
        acct = self._accounts.get(path)
        if acct is None:
            acct = Account.from_mnemonic(self.__mnemonic, account_path=path)
            self._accounts[path] = acct
        return acct

    def address(self, path: str) -> str:
        return self._account(path).address

    def sign_evm(self, path: str, tx: Mapping[str, Any]) -> tuple[bytes, str]:
        signed = self._account(path).sign_transaction(dict(tx))
        return bytes(signed.raw_transaction), signed.hash.to_0x_hex()


def load_or_create_seed(path: Path) -> str:
    """Read the mnemonic from ``path``; on first use generate one and write it with mode 0600.

    The file is written to a private temporary name, then hard-linked into place, so it is never
    seen half-written and two processes racing to create it agree on one mnemonic.
    """
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _, mnemonic = Account.create_with_mnemonic()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(mnemonic + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)
                log.info("generated a new signer seed at %s", path)
            except FileExistsError:
                pass  # another process won the race; use its seed
        finally:
            tmp.unlink(missing_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("signer seed file %s is accessible by group/others (mode %o)", path, mode)
    return path.read_text().strip()
