"""Who calls the staff API: a staff token (``recovery staff create``) with a role the route allows.

No token or an unknown one is 401; a user's token, or a staff token of another role, is 403 with what to
do instead. Acting on a case needs a name on the roster of engineers as well (admins included): the
workflow checks the roster too, but a token whose name left the roster is stopped here first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import SessionDep, SettingsDep, token_expired, unauthorized
from api.rate_limits import Budget, client_address, limiter_of, user_budget
from recovery.i18n import Message
from store.api_tokens import TokenExpired
from store.staff import StaffMember, StaffRole, authenticate_staff
from store.users import User, authenticate

STAFF_TOKEN_HELP = Message(
    "send a staff API token as 'Authorization: Bearer <token>'; an operator issues one with "
    "`recovery staff create --name <name> --role engineer|finance|admin`"
)

_staff_bearer = HTTPBearer(
    auto_error=False, scheme_name="StaffToken", description="Staff API token from `recovery staff create`"
)


def staff_with_role(*roles: StaffRole) -> Callable[..., StaffMember]:
    """A dependency: the calling staff member, who must have one of ``roles``. Each request spends the
    member's rate-limit budget (a request without a valid token spends its client address's)."""
    allowed = ", ".join(r.value for r in roles)

    def dependency(
        request: Request,
        session: SessionDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_staff_bearer)],
    ) -> StaffMember:
        limiter = limiter_of(request)
        if credentials is None or not credentials.credentials:
            limiter.spend(Budget.ANONYMOUS, client_address(request))
            raise unauthorized(Message("missing staff API token: {help}", help=STAFF_TOKEN_HELP))
        user: User | None = None
        try:
            member = authenticate_staff(session, token=credentials.credentials)
            user = None if member is not None else authenticate(session, token=credentials.credentials)
        except TokenExpired as exc:
            session.commit()
            limiter.spend(Budget.ANONYMOUS, client_address(request))
            renewal = Message("ask an admin for a new one (`recovery staff token rotate <name>`)")
            raise unauthorized(token_expired(exc, renewal)) from None
        session.commit()  # hand the connection back before the handler awaits Temporal
        if user is not None:
            limiter.spend(user_budget(request), f"user:{user.user_id}")
            raise HTTPException(
                status_code=status.HTTP_403_FORBIDDEN,
                detail=Message(
                    "this is a user's API token: staff routes need a staff token ({help})", help=STAFF_TOKEN_HELP
                ),
            )
        if member is None:
            limiter.spend(Budget.ANONYMOUS, client_address(request))
            raise unauthorized(Message("invalid staff API token: {help}", help=STAFF_TOKEN_HELP))
        limiter.spend(Budget.STAFF, f"staff:{member.id}")
        if member.role not in roles:
            raise HTTPException(
                status_code=status.HTTP_403_FORBIDDEN,
                detail=Message(
                    "{name} is {role}; this route is for {allowed} only",
                    name=member.name,
                    role=member.role.value,
                    allowed=allowed,
                ),
            )
        return member

    return dependency


CaseStaff = Annotated[StaffMember, Depends(staff_with_role(StaffRole.ENGINEER, StaffRole.ADMIN))]
"""Reads cases: an engineer or an admin."""
FinanceStaff = Annotated[StaffMember, Depends(staff_with_role(StaffRole.FINANCE, StaffRole.ADMIN))]
"""Reads the money: finance or an admin."""


def acting_engineer(member: CaseStaff, settings: SettingsDep) -> StaffMember:
    """The staff member acting on a case: an engineer or admin whose name is on the roster."""
    roster = [e.name for e in settings.engineers]
    if member.name not in roster:
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN,
            detail=Message(
                "{name} is not on the roster of engineers ({roster}): only engineers on the roster act on cases; "
                "add them to `engineers` in the configuration",
                name=member.name,
                roster=", ".join(roster) or Message("empty"),
            ),
        )
    return member


ActingEngineer = Annotated[StaffMember, Depends(acting_engineer)]
