"""Recording engineers' actions in the append-only audit trail (``store.audit``)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine

from store import audit
from store.db import run_in_session


class AuditTrail:
    def __init__(self, *, engine: Engine) -> None:
        self._engine = engine

    async def record(
        self,
        *,
        case_id: str,
        key: str,
        engineer: str,
        action: str,
        attested: bool,
        request: dict[str, Any],
        before: dict[str, Any],
        after: dict[str, Any],
    ) -> bool:
        """Once per ``(case_id, key)``; False when a retry finds it recorded."""
        return await run_in_session(
            self._engine,
            audit.append,
            case_id=case_id,
            key=key,
            engineer=engineer,
            action=action,
            attested=attested,
            input_json=json.dumps(request, sort_keys=True, default=str),
            before_json=json.dumps(before, sort_keys=True, default=str),
            after_json=json.dumps(after, sort_keys=True, default=str),
        )
