"""The VK API through vk_api, off the event loop, with rate limiting and retries.

vk_api is synchronous (requests): every call runs in this client's own thread pool. Its API address
is fixed inside `VkApi.method`, so a transport adapter mounted on the requests session sends those
requests to `VK_API_BASE` instead (a proxy, or a local fake in tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import itertools
import logging
import re
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
import vk_api
from jconfig.memory import MemoryConfig
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies
from vk_api.exceptions import TOO_MANY_RPS_CODE, ApiError, ApiHttpError, VkApiError

log = logging.getLogger(__name__)

API_VERSION = "5.199"
DEFAULT_API_BASE = "https://api.vk.com/method"
REQUEST_TIMEOUT = (10.0, 30.0)  # connect, read (seconds)
# Where vk_api (any version) sends API calls; all of them are redirected to the configured base.
LIBRARY_API_PREFIXES = ("https://api.vk.ru/method/", "https://api.vk.com/method/")

RATE_LIMITED = frozenset({6, 9})  # too many requests per second; flood control
BLOCKED = frozenset({900, 901, 902})  # blacklisted us, never allowed messages, privacy settings
KEYBOARD_REFUSED = frozenset({911, 912})  # keyboard format invalid; bot features off for the community
# Errors that say the request itself is wrong, so trying again cannot help. Anything else (auth
# trouble, an unknown new code) is retried, so nothing is dropped silently.
PERMANENT = BLOCKED | KEYBOARD_REFUSED | {100, 113, 913, 914, 917, 921, 936, 940, 945, 946}


class VkSendError(Exception):
    """A call that did not succeed; `retry` says whether trying later may help."""

    def __init__(self, message: str, *, code: int | None = None, retry: bool = True):
        super().__init__(message)
        self.code = code
        self.retry = retry

    @property
    def blocked(self) -> bool:
        return self.code in BLOCKED


class RedirectAdapter(HTTPAdapter):
    """Sends requests for the library's built-in API address to another base URL, with a timeout
    (vk_api sets none, and a hung connection would hold a worker thread for ever)."""

    def __init__(self, prefix: str, base: str):
        super().__init__()
        self.prefix = prefix
        self.base = base.rstrip("/") + "/"

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        url = request.url or ""
        if url.startswith(self.prefix):
            request.url = self.base + url[len(self.prefix) :]
            # Proxies were chosen for the original host; choose again for the new one.
            kwargs["proxies"] = get_environ_proxies(request.url)
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = REQUEST_TIMEOUT
        return super().send(request, **kwargs)


class RateLimiter:
    """At most `rate` starts a second; the earliest `since` first (a call's first attempt), so a
    retry keeps its place instead of queueing behind every call that came after it."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._waiting: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()  # equal `since`: arrival order
        self._dispatcher: asyncio.Task[None] | None = None

    async def wait(self, since: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        turn: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._waiting, (time.monotonic() if since is None else since, next(self._order), turn))
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = loop.create_task(self._dispatch())
        await turn  # a cancelled waiter's turn is skipped

    async def _dispatch(self) -> None:
        while self._waiting:
            delay = self._next - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            while self._waiting:
                _, _, turn = heapq.heappop(self._waiting)
                if not turn.done():
                    turn.set_result(None)
                    self._next = max(time.monotonic(), self._next) + self.interval
                    break


class VkApiClient:
    """`await client.call("messages.send", {...})`: rate limited, retried on transient errors."""

    def __init__(
        self,
        token: str,
        api_base: str = "",
        *,
        rate: float = 20.0,
        attempts: int = 3,
        retry_base: float = 0.5,
        workers: int = 8,
        on_error: Callable[[object], None] | None = None,
    ):
        self.on_error = on_error or (lambda code: None)  # counts errors by code (metrics)
        self.session = requests.Session()
        base = api_base or DEFAULT_API_BASE
        for prefix in LIBRARY_API_PREFIXES:
            self.session.mount(prefix, RedirectAdapter(prefix, base))
        self.vk = vk_api.VkApi(token=token, api_version=API_VERSION, session=self.session, config=MemoryConfig)
        # Pacing and rate-limit retries happen here, asynchronously: vk_api would sleep in the
        # thread, retry error 6 forever, and hold its lock around every HTTP request.
        self.vk.RPS_DELAY = 0
        self.vk.error_handlers.pop(TOO_MANY_RPS_CODE, None)
        self.vk.lock = contextlib.nullcontext()
        self.limiter = RateLimiter(rate)
        self.attempts = attempts
        self.retry_base = retry_base
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vk-api")

    async def call(self, method: str, values: Mapping[str, Any] | None = None, *, attempts: int | None = None) -> Any:
        """One API method; retries rate limits, network errors and 5xx, then raises VkSendError."""
        tries = attempts or self.attempts
        since = time.monotonic()  # every attempt keeps the place of the first
        for attempt in range(1, tries + 1):
            try:
                return await self._call_once(method, dict(values or {}), since)
            except VkSendError as exc:
                self.on_error(exc.code if exc.code is not None else "network")
                if not exc.retry or attempt == tries:
                    raise
                delay = self.retry_base * 2 ** (attempt - 1) * (2 if exc.code in RATE_LIMITED else 1)
                log.warning("VK %s failed (%s), retry %d/%d in %.2fs", method, exc, attempt, tries - 1, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _call_once(self, method: str, values: dict[str, Any], since: float) -> Any:
        await self.limiter.wait(since)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, functools.partial(self.vk.method, method, values))
        except ApiError as exc:
            code = exc.code
            message = f"[{code}] {exc.error.get('error_msg', '')}"
            raise VkSendError(message, code=code, retry=code not in PERMANENT) from None
        except ApiHttpError as exc:
            raise VkSendError(f"HTTP {exc.response.status_code}", retry=True) from None
        except (requests.RequestException, ValueError) as exc:  # network, or a body that is not JSON
            raise VkSendError(f"{type(exc).__name__}: {without_token(str(exc))}", retry=True) from None
        except VkApiError as exc:  # a captcha or another library-level refusal: try again later
            raise VkSendError(f"{type(exc).__name__}: {without_token(str(exc))}", retry=True) from None

    def run_blocking(self, func: Any, *args: Any) -> asyncio.Future[Any]:
        """Run another vk_api call (the long poll) in this client's pool."""
        return asyncio.get_running_loop().run_in_executor(self._pool, func, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.session.close()


_TOKEN = re.compile(r"(access_token=)[^&'\"\s,)]+")


def without_token(text: str) -> str:
    """Request errors can quote the URL or form; never let the token reach a log."""
    return _TOKEN.sub(r"\1***", text)
