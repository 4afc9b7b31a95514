"""`GET /healthz`: the doctor's checks (`reactor doctor --json`), 200 when
all pass and 503 when one fails."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from reactor.api.http.access import Reader
from reactor.api.http.errors import responses
from reactor.observability.health import Check

router = APIRouter(tags=["health"])

HealthChecks = Callable[[], Awaitable[list[Check]]]


class CheckResult(BaseModel):
    name: str
    ok: bool
    detail: str
    fix: str | None = None


class Health(BaseModel):
    healthy: bool
    checks: list[CheckResult]


@router.get(
    "/healthz",
    response_model=Health,
    summary="The doctor's checks",
    responses={503: {"model": Health}, **responses(401)},
)
async def healthz(request: Request, response: Response, _principal: Reader) -> Health:
    checks: HealthChecks = request.app.state.health
    found = await checks()
    healthy = all(c.ok for c in found)
    response.status_code = 200 if healthy else 503
    return Health(healthy=healthy, checks=[CheckResult.model_validate(c.as_dict()) for c in found])
