"""The HTTP API's application: the reactor's routes, one error shape, the
OpenAPI document at /openapi.json and interactive docs at /docs. Further
routers (a live event stream, a page) are passed in `routers` and share the
same state: `app.state.reactor`, `.auth` and `.health`."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, FastAPI

from reactor.api.http import errors, schema
from reactor.api.http.auth import JwtHandler
from reactor.api.http.routes_actions import router as actions_router
from reactor.api.http.routes_batches import router as batches_router
from reactor.api.http.routes_documents import router as documents_router
from reactor.api.http.routes_events import router as events_router
from reactor.api.http.routes_explorer import router as explorer_router
from reactor.api.http.routes_health import HealthChecks
from reactor.api.http.routes_health import router as health_router
from reactor.api.http.routes_jobs import router as jobs_router
from reactor.api.http.routes_listings import router as listings_router
from reactor.api.http.routes_sync import router as sync_router
from reactor.api.reactor import Reactor
from reactor.observability.health import Check, diagnose
from reactor.runtime.settings import Settings

ROUTERS: tuple[APIRouter, ...] = (
    batches_router,
    actions_router,
    documents_router,
    listings_router,
    jobs_router,
    health_router,
    explorer_router,
    events_router,
    sync_router,
)


def create_app(
    reactor: Reactor,
    auth: JwtHandler | None = None,
    *,
    settings: Settings | None = None,
    routers: Sequence[APIRouter] = (),
) -> FastAPI:
    """`settings` (where the stack is) gives /healthz the doctor's full
    checks; without them it checks the reactor's own connections."""
    app = FastAPI(
        title="reactor",
        version="1",
        description="Batches of actions on documents, job status and document reads.",
        docs_url="/docs",
        openapi_url="/openapi.json",
        redoc_url=None,
        # Operation ids are the route functions' names: what generated
        # clients call their methods.
        generate_unique_id_function=lambda route: route.name,
    )
    app.state.reactor = reactor
    app.state.auth = auth
    app.state.health = _health(reactor, settings)
    errors.install(app)
    for router in (*ROUTERS, *routers):
        app.include_router(router)
    schema.install(app)
    return app


def _health(reactor: Reactor, settings: Settings | None) -> HealthChecks:
    async def doctor() -> list[Check]:
        assert settings is not None
        return await diagnose(settings)

    async def own() -> list[Check]:
        checks = []
        try:
            async with reactor.db.pool.acquire() as conn:
                await conn.fetchval("SELECT 1")
            checks.append(Check("database", True, "the reactor's pool answers"))
        except Exception as exc:
            checks.append(Check("database", False, str(exc), "see `reactor doctor`"))
        try:
            await reactor.client.service_client.check_health()
            checks.append(Check("temporal", True, "the reactor's client answers"))
        except Exception as exc:
            checks.append(Check("temporal", False, str(exc), "see `reactor doctor`"))
        return checks

    return doctor if settings is not None else own
