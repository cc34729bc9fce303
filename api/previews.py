"""The claim-time answer's dependency: one :class:`~services.claim_preview.ClaimPreviewer` per app, made on first
use from the app's settings and engine, its texts through the app's secret redactor. Tests swap it with
``app.dependency_overrides[get_claim_previewer]``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from recovery.redaction import Redactor
from services.claim_preview import ClaimPreviewer


def get_claim_previewer(request: Request) -> ClaimPreviewer:
    state = request.app.state
    previewer: ClaimPreviewer | None = getattr(state, "claim_previewer", None)
    if previewer is None:
        redactor: Redactor | None = getattr(state, "redactor", None)
        previewer = ClaimPreviewer(
            settings=state.settings,
            engine=state.engine,
            redact=redactor.redact if redactor is not None else None,
        )
        state.claim_previewer = previewer
    return previewer


ClaimPreviewerDep = Annotated[ClaimPreviewer, Depends(get_claim_previewer)]
