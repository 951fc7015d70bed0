"""What both clients share on the wire: one httpx connection pool per session, the headers,
retries of answers worth another try, and JSON answers checked once.

httpx's exceptions are translated here (or in ``errors``) and never leave the package: no answer
at all (refused, timed out, a bad URL) is a ``ClientError`` with ``status`` None.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Self

import httpx

from api.client.errors import ClientError

#: The headers of a body sent already encoded as JSON.
_JSON_CONTENT = {"Content-Type": "application/json"}

DEFAULT_URL = "http://127.0.0.1:3476"
#: Seconds httpx waits at each step of a request (connect, send, read, a pooled connection).
DEFAULT_TIMEOUT = 60.0


#: Retries after the first attempt, the first retry's delay (each further one doubles it) and
#: the longest wait, a Retry-After included.
MAX_RETRIES = 5
RETRY_BASE_DELAY = 0.5
MAX_RETRY_DELAY = 60.0
#: Transport failures worth another try: the server may answer the next one. An unsupported
#: scheme or a request httpx cannot even build will not improve.
_RETRIED_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


@dataclass(frozen=True, slots=True)
class Retry:
    """How a session retries an answer of 429 or 5xx, or no answer: up to ``retries``
    more times, waiting ``base_delay * 2**n`` before retry n (0-based), or the answer's
    Retry-After when it has one; never longer than ``max_delay``. Other answers, 4xx included,
    are never retried."""

    retries: int = MAX_RETRIES
    base_delay: float = RETRY_BASE_DELAY
    max_delay: float = MAX_RETRY_DELAY

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        wait = self.base_delay * 2**attempt if retry_after is None else retry_after
        return min(wait, self.max_delay)

    @staticmethod
    def wanted(status: int) -> bool:
        return status == 429 or status >= 500


#: How the records client retries unless told otherwise.
DEFAULT_RETRY = Retry()
#: One try per request, never a retry: how the Permify client sends.
NO_RETRY = Retry(retries=0)


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (delta-seconds or an HTTP date); None when absent or unreadable."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _user_agent() -> str:
    try:
        return f"stonetown-cli/{version('stonetown')}"
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "stonetown-cli"


def _http_client(
    url: str, key: str | None, timeout: float, transport: httpx.BaseTransport | None
) -> httpx.Client:
    headers = {"User-Agent": _user_agent()}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    try:
        return httpx.Client(
            base_url=url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )
    except httpx.InvalidURL as exc:
        raise ClientError(f"invalid server URL {url!r}: {exc}") from exc


def _no_answer(url: str, path: str, exc: httpx.HTTPError) -> ClientError:
    """The ClientError (status None) for a request that got no answer."""
    if isinstance(exc, httpx.ConnectError):
        return ClientError(f"cannot connect to {url}: {exc}")
    if isinstance(exc, httpx.TimeoutException):
        return ClientError(f"no answer from {url} in time: {exc}")
    return ClientError(f"request to {url}{path} failed: {exc}")  # UnsupportedProtocol, ...


class Session:
    """One HTTP connection pool to a server, for one tenant; a context manager.

    Every request is retried as ``retry`` says (``sleep`` waits; tests may record instead).
    """

    def __init__(
        self,
        url: str,
        key: str | None,
        tenant: str,
        timeout: float,
        transport: httpx.BaseTransport | None,
        *,
        retry: Retry = NO_RETRY,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url.rstrip("/")
        self.tenant = tenant
        self.retry = retry
        self._sleep = sleep
        self._http = _http_client(url, key, timeout, transport)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _exchange(
        self,
        method: str,
        path: str,
        params: Sequence[tuple[str, str]] | None,
        body: Mapping[str, Any] | bytes | None,
    ) -> httpx.Response:
        """The first answer not worth retrying, or the last one when the retries are used up.
        A ``bytes`` body is JSON encoded already."""
        # A tuple of pairs: httpx types lists of pairs invariantly, tuples covariantly.
        query = None if params is None else tuple(params)
        attempt = 0
        while True:
            try:
                if isinstance(body, bytes):
                    response = self._http.request(
                        method, path, params=query, content=body, headers=_JSON_CONTENT
                    )
                else:
                    response = self._http.request(method, path, params=query, json=body)
            except _RETRIED_ERRORS as exc:
                if attempt >= self.retry.retries:
                    raise _no_answer(self.url, path, exc) from exc
                self._sleep(self.retry.delay(attempt))
            except httpx.HTTPError as exc:
                raise _no_answer(self.url, path, exc) from exc
            else:
                if attempt >= self.retry.retries or not Retry.wanted(response.status_code):
                    return response
                self._sleep(self.retry.delay(attempt, _retry_after(response)))
            attempt += 1

    def _json(
        self,
        method: str,
        path: str,
        *,
        params: Sequence[tuple[str, str]] | None = None,
        body: Mapping[str, Any] | bytes | None = None,
    ) -> Any:
        """The decoded JSON of a successful answer; an error answer raises its ClientError."""
        response = self._exchange(method, path, params, body)
        if not response.is_success:
            raise ClientError.from_response(response)
        try:
            return response.json()
        except ValueError as exc:
            raise ClientError(
                f"{self.url}{path} answered {response.status_code} with a body that is not JSON",
                status=response.status_code,
            ) from exc
