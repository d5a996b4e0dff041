"""Who may call the HTTP API, how often, and what each answer carries and leaves behind.

Settings come from the environment, read once when the app is made:

    HEMATOVISION_API_TOKENS_FILE         file with one bearer token a line (# comments, blank lines ok)
    HEMATOVISION_API_RATE_LIMIT          POST /predict, per token or address (default "60 per minute")
    HEMATOVISION_API_EXPLAIN_RATE_LIMIT  POST /explain (default "10 per minute")
    HEMATOVISION_API_RATE_LIMIT_STORAGE  where counts live (default "memory://": each process its own)
    HEMATOVISION_API_CORS_ORIGINS        comma-separated origins whose web pages may call the API
    HEMATOVISION_API_TRUSTED_PROXIES     reverse proxies in front that set X-Forwarded-For (default 0)

With tokens, every request except ``GET /health`` needs ``Authorization: Bearer TOKEN``,
and an unauthenticated ``/health`` says only that the server is up. Without tokens the API
answers programs on its own machine only: ``check_bind`` refuses a non-loopback address at
start-up, and a request from another address (or relayed by a proxy) is refused with 403.
Only a sha256 of each token is kept; logs and rate-limit keys use a short id derived from it.

One access-log line per request goes to the ``hematovision.access`` logger, as JSON: time,
token id, client address, method, endpoint, status, duration and the sha256 of each uploaded
image. Never a token, a file name, a query string or image content.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import os
import socket
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit

import limits
from flask import Flask, Response, g, request
from flask_limiter import Limiter
from limits.errors import ConfigurationError
from limits.storage import storage_from_string
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Forbidden, Unauthorized
from werkzeug.middleware.proxy_fix import ProxyFix

TOKENS_FILE_ENV = "HEMATOVISION_API_TOKENS_FILE"
RATE_LIMIT_ENV = "HEMATOVISION_API_RATE_LIMIT"
EXPLAIN_RATE_LIMIT_ENV = "HEMATOVISION_API_EXPLAIN_RATE_LIMIT"
RATE_LIMIT_STORAGE_ENV = "HEMATOVISION_API_RATE_LIMIT_STORAGE"
CORS_ORIGINS_ENV = "HEMATOVISION_API_CORS_ORIGINS"
TRUSTED_PROXIES_ENV = "HEMATOVISION_API_TRUSTED_PROXIES"

# A prediction is one forward pass (~50 ms): one a second per client is plenty for a script
# and still stops one caller from taking the server. An explanation can cost seconds of CPU.
DEFAULT_RATE_LIMIT = "60 per minute"
DEFAULT_EXPLAIN_RATE_LIMIT = "10 per minute"
# 32 characters of token_urlsafe are 192 bits: too many to guess, even from a hash prefix.
MIN_TOKEN_LENGTH = 32
TOKEN_ID_LENGTH = 8
NEW_TOKEN_COMMAND = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
OPEN_ENDPOINTS = ("health",)  # answered without a token (and then with the status only)

ACCESS_LOG = logging.getLogger("hematovision.access")
LOG = logging.getLogger("hematovision.api")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    # Answers are about a patient's cells: no browser or proxy cache may keep them.
    "Cache-Control": "no-store",
}


class SecurityError(ValueError):
    """The server's security settings cannot be used; the message says how to fix them."""


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def token_id(digest: bytes) -> str:
    """A token's name in logs and rate-limit keys: the start of its hash, never the token."""
    return digest.hex()[:TOKEN_ID_LENGTH]


@dataclass(frozen=True)
class Tokens:
    """The accepted tokens, held only as sha256 digests."""

    digests: tuple[bytes, ...]

    @classmethod
    def from_text(cls, text: str, source: str = "the tokens file") -> Tokens:
        digests = []
        for number, line in enumerate(text.splitlines(), start=1):
            token = line.strip()
            if not token or token.startswith("#"):
                continue
            if any(character.isspace() for character in token):
                raise SecurityError(f"{source}, line {number}: a token cannot contain spaces; "
                                    "put one token on each line.")
            if len(token) < MIN_TOKEN_LENGTH:
                raise SecurityError(f"{source}, line {number}: the token is {len(token)} characters; "
                                    f"use at least {MIN_TOKEN_LENGTH} random ones, e.g. from "
                                    f"{NEW_TOKEN_COMMAND}.")
            digests.append(token_digest(token))
        if not digests:
            raise SecurityError(f"{source} holds no token: put one on each line, e.g. from "
                                f"{NEW_TOKEN_COMMAND}.")
        return cls(tuple(dict.fromkeys(digests)))

    @classmethod
    def from_file(cls, path: str | Path) -> Tokens:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SecurityError(f"{TOKENS_FILE_ENV} names {path}, which does not exist.") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SecurityError(f"{TOKENS_FILE_ENV} names {path}, which cannot be read ({exc}).") from None
        if path.stat().st_mode & 0o077:
            LOG.warning("The tokens file %s can be read by other users of this machine; "
                        "chmod 600 it.", path)
        return cls.from_text(text, source=str(path))

    def identify(self, presented: str) -> str | None:
        """The id of the token presented, or None; every digest is compared, in constant time."""
        digest = token_digest(presented)
        matched = None
        for known in self.digests:
            if hmac.compare_digest(digest, known):
                matched = known
        return token_id(matched) if matched is not None else None


@dataclass(frozen=True)
class SecuritySettings:
    tokens: Tokens | None = None
    predict_limit: str = DEFAULT_RATE_LIMIT
    explain_limit: str = DEFAULT_EXPLAIN_RATE_LIMIT
    limit_storage: str = "memory://"
    cors_origins: tuple[str, ...] = ()
    trusted_proxies: int = 0

    def __post_init__(self) -> None:
        # Messages name the variables: that is where these values usually come from.
        for variable, value in ((RATE_LIMIT_ENV, self.predict_limit), (EXPLAIN_RATE_LIMIT_ENV, self.explain_limit)):
            try:
                limits.parse_many(value)
            except ValueError:
                raise SecurityError(f"{variable} {value!r} is not a rate limit; write e.g. "
                                    f"'{DEFAULT_RATE_LIMIT}' or '10 per minute; 200 per hour'.") from None
        for origin in self.cors_origins:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query:
                raise SecurityError(f"{CORS_ORIGINS_ENV}: {origin!r} is not an origin; write it as "
                                    "https://host or https://host:port, nothing after.")
        if self.trusted_proxies < 0:
            raise SecurityError("The number of trusted proxies cannot be negative.")
        try:
            storage_from_string(self.limit_storage)
        except ConfigurationError as exc:
            raise SecurityError(f"{RATE_LIMIT_STORAGE_ENV} {self.limit_storage!r} cannot be used: {exc}") from None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> SecuritySettings:
        tokens_file = environ.get(TOKENS_FILE_ENV, "").strip()
        proxies = environ.get(TRUSTED_PROXIES_ENV, "0").strip() or "0"
        if not proxies.isdigit():
            raise SecurityError(f"{TRUSTED_PROXIES_ENV} must be a whole number of proxies; got {proxies!r}.")
        origins = environ.get(CORS_ORIGINS_ENV, "")
        return cls(
            tokens=Tokens.from_file(tokens_file) if tokens_file else None,
            predict_limit=environ.get(RATE_LIMIT_ENV, "").strip() or DEFAULT_RATE_LIMIT,
            explain_limit=environ.get(EXPLAIN_RATE_LIMIT_ENV, "").strip() or DEFAULT_EXPLAIN_RATE_LIMIT,
            limit_storage=environ.get(RATE_LIMIT_STORAGE_ENV, "").strip() or "memory://",
            cors_origins=tuple(o.strip().rstrip("/") for o in origins.split(",") if o.strip()),
            trusted_proxies=int(proxies),
        )


# -- where the server may listen ----------------------------------------------------------

def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) is reachable from this machine only."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except (socket.gaierror, UnicodeError):
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def check_bind(host: str, settings: SecuritySettings) -> None:
    """Refuse to listen beyond this machine without tokens (SecurityError says what to do)."""
    if settings.tokens is None and not is_loopback(host):
        raise SecurityError(
            f"Refusing to listen on {host} without API tokens: anyone who can reach this machine "
            f"could use the API. Put one token a line in a file outside the repository "
            f"(e.g. {NEW_TOKEN_COMMAND} > ~/.hematovision-tokens; chmod 600 ~/.hematovision-tokens), "
            f"set {TOKENS_FILE_ENV} to that file's path and start again; or listen on 127.0.0.1. "
            "See docs/security.md.")


# -- what every request goes through -----------------------------------------------------

def install(app: Flask, settings: SecuritySettings) -> None:
    """Authentication, rate limits, headers and the access log, on every request of ``app``.

    The order of the hooks matters: the caller is identified first, so the limiter can count
    per token; the limiter counts before access is refused, so guessing tokens is counted too.
    """
    if settings.trusted_proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies,
                                x_proto=settings.trusted_proxies)
    _log_access_somewhere()

    @app.before_request
    def identify_caller() -> None:
        g.access_started = time.perf_counter()
        g.image_sha256 = []
        g.token_id = None
        presented = _bearer_token()
        if settings.tokens is not None and presented:
            g.token_id = settings.tokens.identify(presented)

    @app.after_request
    def retry_after_only_on_429(response: Response) -> Response:
        # Registered before the limiter, so it runs after it: the limiter puts Retry-After
        # on every answer, where a client could take it as a request to wait.
        if response.status_code != 429:
            response.headers.pop("Retry-After", None)
        return response

    # The endpoints that run the model, each with its limit ("" is none: /health is cheap).
    endpoint_limits = {"predict": settings.predict_limit, "explain": settings.explain_limit}
    Limiter(key_func=_rate_limit_key, app=app, storage_uri=settings.limit_storage,
            strategy="fixed-window", headers_enabled=True,
            default_limits=[lambda: endpoint_limits.get(request.endpoint, "")],
            default_limits_exempt_when=lambda: request.method == "OPTIONS")

    @app.before_request
    def refuse_unwelcome() -> None:
        origin = request.headers.get("Origin")
        if origin is not None and origin not in settings.cors_origins:
            raise Forbidden(f"Requests from web pages at {origin} are refused: that origin is not "
                            f"in {CORS_ORIGINS_ENV}.")
        if request.method == "OPTIONS":
            return  # a browser's CORS preflight carries no token; it only learns the headers
        if settings.tokens is None:
            if not _direct_loopback_client():
                raise Forbidden("This server has no API tokens, so it answers programs on its own "
                                f"machine only; set {TOKENS_FILE_ENV} to serve others.")
            return
        if g.token_id is None and request.endpoint not in OPEN_ENDPOINTS:
            raise _unauthorized()

    @app.after_request
    def finish(response: Response) -> Response:
        response.headers.update(SECURITY_HEADERS)
        _allow_origin(response, settings.cors_origins)
        _log_request(response)
        return response


def open_to_caller(settings: SecuritySettings) -> bool:
    """Whether this request may see more than that the server is up (for /health)."""
    return settings.tokens is None or g.get("token_id") is not None


def note_upload(data: bytes) -> None:
    """Put the uploaded image's sha256 in this request's access-log line."""
    g.image_sha256.append(hashlib.sha256(data).hexdigest())


def _bearer_token() -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def _unauthorized() -> Unauthorized:
    header = request.headers.get("Authorization")
    if header is None:
        message = "This API needs a token: send it as the header 'Authorization: Bearer TOKEN'."
        challenge = WWWAuthenticate("bearer", {"realm": "HematoVision"})
    elif _bearer_token() is None:
        message = "The Authorization header must read 'Bearer TOKEN'."
        challenge = WWWAuthenticate("bearer", {"realm": "HematoVision", "error": "invalid_request"})
    else:
        message = "The token was not accepted."
        challenge = WWWAuthenticate("bearer", {"realm": "HematoVision", "error": "invalid_token"})
    return Unauthorized(message, www_authenticate=challenge)


def _rate_limit_key() -> str:
    token = g.get("token_id")
    return f"token:{token}" if token else f"address:{request.remote_addr}"


def _direct_loopback_client() -> bool:
    """A client on this machine, not relayed by a proxy (a local proxy would relay anyone)."""
    relayed = "Forwarded" in request.headers or "X-Forwarded-For" in request.headers
    return not relayed and request.remote_addr is not None and is_loopback(request.remote_addr)


def _allow_origin(response: Response, origins: tuple[str, ...]) -> None:
    origin = request.headers.get("Origin")
    if origin is None or origin not in origins:
        return
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Expose-Headers"] = "Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining"
    response.vary.add("Origin")
    if request.method == "OPTIONS":
        response.headers["Access-Control-Allow-Methods"] = "GET, POST"
        response.headers["Access-Control-Allow-Headers"] = "Authorization"
        response.headers["Access-Control-Max-Age"] = "600"


def _log_request(response: Response) -> None:
    started = g.get("access_started")
    ACCESS_LOG.info(json.dumps({
        "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "token": g.get("token_id") or "-",
        "address": request.remote_addr,
        "method": request.method,
        # The route, not the path: a mistyped URL could hold anything, a file name included.
        "endpoint": request.url_rule.rule if request.url_rule is not None else "(no such endpoint)",
        "status": response.status_code,
        "duration_ms": round(1000 * (time.perf_counter() - started), 1) if started else None,
        "image_sha256": list(g.get("image_sha256", [])),
    }))


def _log_access_somewhere() -> None:
    """Send access lines to stderr unless the host program has set up logging itself."""
    if ACCESS_LOG.level == logging.NOTSET:
        ACCESS_LOG.setLevel(logging.INFO)
    if not ACCESS_LOG.hasHandlers():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        ACCESS_LOG.addHandler(handler)
