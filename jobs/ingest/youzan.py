"""Youzan (有赞) orders over the Open API -> a landing JSON-lines file. The pull edge of ingestion.

Youzan shops have no export a brand downloads daily, so we pull: a silent (自用型) token from
POST /auth/token, then youzan.trades.sold.get page by page for one day. The raw API objects are
landed unchanged (``{landing_root}/youzan/orders/dt=YYYY-MM-DD/orders.jsonl``) and the usual
bronze ingestion maps, validates and quarantines them, so a mapping fix can be replayed from
landing without pulling again. The file is written to a temp name and renamed: a failed or
partial pull never leaves a half file for ingestion, and a re-pull replaces the day.

Documented shapes (doc.youzanyun.com, 无容器 API 调用): the gateway is https://open.youzanyun.com;
token request JSON {client_id, client_secret, authorize_type: "silent", grant_id: kdt_id} ->
{success, code, data: {access_token, expires (epoch ms), scope}}; APIs are POST
/api/<name>/<version>?access_token=... with the parameters as a JSON body; 4.x APIs answer
{success, code: 200, message, data} and gateway errors as HTTP 200 with
{gw_err_resp: {err_code, err_msg}}.
Not found in the docs we could search, so chosen as most plausible (see TOKEN_ERROR_CODES and
RATE_LIMIT_CODES): the numeric codes of an expired/invalid token and of rate limiting.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import date, datetime
from datetime import time as dtime
from pathlib import Path

from jobs.common.errors import CdpError
from jobs.common.settings import Settings, get_settings

TRADES_API = "youzan.trades.sold.get"
TRADES_VERSION = "4.0.4"
# Gateway codes for a token that is not (or no longer) valid. 4201/4202/4203 are the codes
# Youzan's gateway is commonly reported to use for invalid/expired/unauthorised tokens; the
# searchable docs do not list them, so any of them triggers one refresh-and-retry.
TOKEN_ERROR_CODES = frozenset({4201, 4202, 4203})
# Rate limiting: an HTTP 429, or 429 as the gateway err_code (assumed; undocumented in what we
# could search). 503 is retried the same way: the gateway answers it under load.
RATE_LIMIT_CODES = frozenset({429})
RETRYABLE_HTTP = frozenset({429, 502, 503, 504})
TOKEN_MARGIN_SECONDS = 300  # refresh a cached token this long before it expires
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


class YouzanApiError(CdpError):
    """The Youzan API answered an error (code and message as Youzan gave them)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


def _error_of(status: int, body: object) -> tuple[int | None, str] | None:
    """(code, message) of an error answer, None for a success."""
    if isinstance(body, dict):
        gw = body.get("gw_err_resp") or body.get("error_response")
        if isinstance(gw, dict):
            code = gw.get("err_code", gw.get("code"))
            return _int(code), str(gw.get("err_msg") or gw.get("msg") or "gateway error")
        if body.get("success") is False or (body.get("code") not in (None, 200, "200")):
            return _int(body.get("code")), str(body.get("message") or "request failed")
        if status == 200:
            return None
    return status, f"HTTP {status}"


def _int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


class YouzanClient:
    """A small synchronous client for the two Youzan calls the CDP needs. Not thread-safe."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        kdt_id: str,
        *,
        page_size: int = 100,
        max_retries: int = 5,
        backoff_seconds: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self.kdt_id = str(kdt_id)
        self.page_size = page_size
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.sleep = sleep
        self.timeout = timeout
        self.clock = clock
        self._token: str | None = None
        self._expires_at = 0.0  # epoch seconds
        self._random = random.Random()

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **kwargs: object) -> YouzanClient:
        cfg = (settings or get_settings()).youzan
        secret = cfg.client_secret.get_secret_value() if cfg.client_secret else ""
        missing = [
            name
            for name, value in (
                ("CDP_YOUZAN__CLIENT_ID", cfg.client_id),
                ("CDP_YOUZAN__CLIENT_SECRET", secret),
                ("CDP_YOUZAN__KDT_ID", cfg.kdt_id),
            )
            if not value
        ]
        if missing:
            raise CdpError(
                f"Youzan credentials missing: set {', '.join(missing)} in the environment "
                "(the shop's 自用型 app in the Youzan developer console)"
            )
        return cls(cfg.base_url, cfg.client_id, secret, cfg.kdt_id, **kwargs)  # type: ignore[arg-type]

    def __repr__(self) -> str:  # never show the secret or the token
        return (
            f"YouzanClient({self.base_url!r}, client_id={self.client_id!r}, kdt_id={self.kdt_id!r})"
        )

    # -- HTTP -------------------------------------------------------------------------------

    def _post(self, url: str, payload: dict) -> tuple[int, object]:
        request = urllib.request.Request(
            url,
            data=json.dumps(payload, ensure_ascii=False).encode(),
            headers={"Content-Type": "application/json;charset=UTF-8"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise CdpError(f"Youzan API at {self.base_url} is unreachable: {exc}") from exc
        try:
            return status, json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            return status, None

    # -- token ------------------------------------------------------------------------------

    def token(self, *, refresh: bool = False) -> str:
        """The access token, cached until TOKEN_MARGIN_SECONDS before it expires."""
        if not refresh and self._token and self.clock() < self._expires_at - TOKEN_MARGIN_SECONDS:
            return self._token
        status, body = self._post(
            f"{self.base_url}/auth/token",
            {
                "client_id": self.client_id,
                "client_secret": self._client_secret,
                "authorize_type": "silent",
                "grant_id": self.kdt_id,
                "refresh": refresh,
            },
        )
        error = _error_of(status, body)
        data = body.get("data") if isinstance(body, dict) else None
        if error is not None or not isinstance(data, dict) or not data.get("access_token"):
            code, message = error or (None, "no access_token in the answer")
            raise YouzanApiError(
                f"Youzan token request for shop {self.kdt_id} failed: {message} (code {code}); "
                "check CDP_YOUZAN__CLIENT_ID / CLIENT_SECRET / KDT_ID",
                code,
            )
        self._token = str(data["access_token"])
        expires = _int(data.get("expires"))
        # `expires` is epoch milliseconds; without it assume a short life rather than forever.
        self._expires_at = expires / 1000 if expires else self.clock() + 2 * TOKEN_MARGIN_SECONDS
        return self._token

    # -- API calls --------------------------------------------------------------------------

    def backoff(self, attempt: int) -> float:
        """Delay before retry `attempt` (0-based): doubling, plus up to half a step of jitter.

        The jitter is below the doubling, so successive delays always grow."""
        base = self.backoff_seconds * 2**attempt
        return base + self._random.uniform(0, base / 2)

    def call(self, api: str, version: str, params: dict, *, what: str | None = None) -> dict:
        """`data` of one API call. Refreshes an expired token once; retries rate limiting with
        exponential backoff, at most max_retries times. `what` names the call in errors."""
        what = what or api
        url_base = f"{self.base_url}/api/{api}/{version}"
        refreshed = False
        attempt = 0
        while True:
            query = urllib.parse.urlencode({"access_token": self.token()})
            status, body = self._post(f"{url_base}?{query}", params)
            error = _error_of(status, body)
            if error is None:
                data = body.get("data") if isinstance(body, dict) else None
                if not isinstance(data, dict):
                    raise YouzanApiError(f"{what}: answer without a data object")
                return data
            code, message = error
            if code in TOKEN_ERROR_CODES:
                if refreshed:
                    raise YouzanApiError(
                        f"{what}: token refused again after a refresh: {message} (code {code})",
                        code,
                    )
                self.token(refresh=True)
                refreshed = True
                continue
            if code in RATE_LIMIT_CODES or status in RETRYABLE_HTTP:
                if attempt >= self.max_retries:
                    raise YouzanApiError(
                        f"{what}: still rate-limited after {self.max_retries} retries "
                        f"({message}, code {code}); retry the pull later",
                        code,
                    )
                self.sleep(self.backoff(attempt))
                attempt += 1
                continue
            raise YouzanApiError(f"{what}: Youzan error {code}: {message}", code)

    def iter_orders(self, start: datetime, end: datetime) -> Iterator[dict]:
        """Every element of data.full_order_info_list created in [start, end] (shop wall time),
        exactly as received, each order once."""
        seen: set[str] = set()
        collected = 0
        page_no = 1
        max_pages: int | None = None
        while max_pages is None or page_no <= max_pages:
            data = self.call(
                TRADES_API,
                TRADES_VERSION,
                {
                    "page_no": page_no,
                    "page_size": self.page_size,
                    "start_created": start.strftime(TIME_FORMAT),
                    "end_created": end.strftime(TIME_FORMAT),
                },
                what=f"{TRADES_API} page {page_no}",
            )
            items = data.get("full_order_info_list") or []
            total = _int(data.get("total_results")) or 0
            # The server may cap page_size below ours, so stop on the total, not on a short page.
            # Bound: every page brings at least one order, so no more pages than orders (+1).
            max_pages = total + 1
            if not items:
                return
            for item in items:
                collected += 1
                tid = _tid(item)
                if tid is not None:
                    if tid in seen:  # a page shifted under us (orders are newest first)
                        continue
                    seen.add(tid)
                yield item
            if collected >= total:
                return
            page_no += 1


def _tid(item: object) -> str | None:
    try:
        tid = item["full_order_info"]["order_info"]["tid"]  # type: ignore[index]
    except (KeyError, TypeError):
        return None
    return str(tid) if tid else None


def landing_file(day: date, settings: Settings) -> Path:
    return Path(settings.landing_root) / "youzan" / "orders" / f"dt={day}" / "orders.jsonl"


def pull_orders(
    day: date, settings: Settings | None = None, client: YouzanClient | None = None
) -> Path:
    """Land the orders created on `day` (Asia/Shanghai) as JSON lines; returns the file.

    The whole day is pulled before anything is written; the file then appears atomically
    (temp file in the same folder + rename), replacing an earlier pull of the same day."""
    settings = settings or get_settings()
    client = client or YouzanClient.from_settings(settings)
    start = datetime.combine(day, dtime.min)
    end = datetime.combine(day, dtime(23, 59, 59))
    lines = [
        json.dumps(item, ensure_ascii=False, separators=(",", ":"))
        for item in client.iter_orders(start, end)
    ]
    target = landing_file(day, settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    # The temp name does not end in .jsonl, so ingestion never picks up a half-written file.
    fd, tmp = tempfile.mkstemp(prefix=".orders.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
            out.write("".join(f"{line}\n" for line in lines))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
