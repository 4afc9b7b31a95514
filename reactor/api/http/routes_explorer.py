"""The document explorer: one static page at `/` (HTML, a script and a
stylesheet from package data, no build step) that reads the JSON API like
any other client, and `GET /v1/types`, the document types it lists.

The page and its assets carry no data, so they are served without a token;
the page asks for one when the API answers 401. Its Content-Security-Policy
allows only its own script and connections to this origin: whatever a
document holds is rendered as text, never as markup."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from reactor.api.http.access import Reader
from reactor.api.http.errors import ApiError, responses
from reactor.api.http.requests import reactor_of

router = APIRouter()

# The page's files (reactor/api/http/explorer/) and their media types.
PAGE = "index.html"
ASSETS = {
    "explorer.js": "text/javascript; charset=utf-8",
    "explorer.css": "text/css; charset=utf-8",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # A new server version serves a new page: revalidate instead of caching.
    "Cache-Control": "no-cache",
}


class DocumentTypes(BaseModel):
    types: list[str]


def _file(name: str) -> bytes:
    return (resources.files("reactor.api.http") / "explorer" / name).read_bytes()


@router.get("/", include_in_schema=False)
async def page() -> Response:
    return Response(_file(PAGE), media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)


@router.get("/explorer/{name}", include_in_schema=False)
async def asset(name: str) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise ApiError(404, "not_found", f"no explorer file {name!r}", field="path")
    return Response(_file(name), media_type=media_type, headers=SECURITY_HEADERS)


@router.get(
    "/v1/types",
    response_model=DocumentTypes,
    tags=["documents"],
    summary="The document types this reactor knows (those the token may read)",
    responses=responses(401),
)
async def document_types(request: Request, principal: Reader) -> DocumentTypes:
    known = reactor_of(request).registry.types()
    return DocumentTypes(types=[t for t in known if principal is None or principal.allows(t)])
