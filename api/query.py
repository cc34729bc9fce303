"""Query parameters a route does not take are refused, not ignored: a misspelt or retired one (``offset``,
say) would otherwise silently change nothing and the caller would read the wrong page."""

from __future__ import annotations

from fastapi import HTTPException, Request, status
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from recovery.i18n import Message

_taken: dict[int, frozenset[str]] = {}


def _names(route: APIRoute) -> frozenset[str]:
    names = _taken.get(id(route))
    if names is None:
        names = frozenset(_query_names(route.dependant))
        _taken[id(route)] = names
    return names


def _query_names(dependant: Dependant) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def known_query_parameters(request: Request) -> None:
    """An app-wide dependency: 422 naming the unknown parameters and the ones the route takes (``async``: a plain
    function would be run in the thread pool, a thread hop on every request)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    taken = _names(route)
    unknown = sorted({name for name in request.query_params if name not in taken})
    if unknown:
        takes = Message("it takes {names}", names=", ".join(sorted(taken))) if taken else Message("it takes none")
        raise HTTPException(
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=Message(
                "unknown query parameter(s) {names}: remove them ({takes})",
                names=", ".join(repr(n) for n in unknown),
                takes=takes,
            ),
        )
