"""The reactor over HTTP: `create_app(reactor, auth)` and the server that
`reactor serve` runs (reactor.api.http.server)."""

from reactor.api.http.app import ROUTERS, create_app
from reactor.api.http.auth import JwtHandler, Principal

__all__ = ["ROUTERS", "JwtHandler", "Principal", "create_app"]
