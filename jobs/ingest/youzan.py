"""Youzan (有赞) orders over the Open API -> a landing JSON-lines file. The pull edge of ingestion.

Youzan shops have no export a brand downloads daily, so we pull: a silent (自用型) token from
POST /auth/token, then youzan.trades.sold.get page by page for one day, then
youzan.cloud.secret.decrypt.batch for the personal fields, which the API sends as per-shop
ciphertext (`$<base64>$1$`: buyer_phone, fans_nickname, receiver_name, receiver_tel,
delivery_address). The API objects are landed with those fields decrypted and nothing else
changed (``{landing_root}/youzan/orders/dt=YYYY-MM-DD/orders.jsonl``), and the usual bronze
ingestion maps, validates and quarantines them, so a mapping fix can be replayed from landing
without pulling again. The file is written to a temp name and renamed: a failed or partial pull
never leaves a half file for ingestion, and a re-pull replaces the day.

Shapes (doc.youzanyun.com, 无容器 API 调用; see ../shared/platforms.md §1 for the sources): the
gateway is https://open.youzanyun.com; token request JSON {client_id, client_secret,
authorize_type: "silent", grant_id: kdt_id, refresh} -> {success, code, data: {access_token,
expires (epoch ms), scope}}, its errors as {success: false, code (e.g. 1103), message}; APIs are
POST /api/<name>/<version>?access_token=... with the parameters as a JSON body and answer
{success, code: 200, message, data}. Every error comes over HTTP 200: gateway errors as
{gw_err_resp: {trace_id, err_code, err_msg}} (4201 invalid credential or revoked grant, 4202
expired, 4203 unknown token: refresh once; 4101 too frequent: back off), business errors as
{code, msg|message} (500100004 请求被限流 and 123000042: rate limits, back off 3/6/12/24/48 s).

Pagination: page_no and page_size are at most 100 each, so one time window reaches at most
10,000 orders; a window whose total_results is larger is split in two (created or update time,
paired, to the second) until each fits. Orders can repeat across pages and windows: each tid is
kept once. The day is pulled by update time by default (start_update/end_update): the day's new
orders and every order whose status changed that day, so a later status (shipped, closed,
refunded) reaches bronze; silver keeps each order's latest.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

from jobs.common.errors import CdpError
from jobs.common.settings import Settings, get_settings

TRADES_API = "youzan.trades.sold.get"
TRADES_VERSION = "4.0.4"
DECRYPT_API = "youzan.cloud.secret.decrypt.batch"
DECRYPT_VERSION = "1.0.0"
# Gateway codes of a token that is not (or no longer) valid: refresh once and retry. After the
# shop revoked the grant, 4201 persists and so does the token endpoint's refusal: the pull fails.
TOKEN_ERROR_CODES = frozenset({4201, 4202, 4203})
# Rate limiting: the gateway's 4101 (请求太频繁) and the business codes 500100004 (请求被限流)
# and 123000042, all over HTTP 200. Retried with the documented back-off.
RATE_LIMIT_CODES = frozenset({4101, 500100004, 123000042})
# Transport-level answers retried the same way (no HTTP 429 is documented; harmless if seen).
RETRYABLE_HTTP = frozenset({429, 502, 503, 504})
BACKOFF_SECONDS = 3.0  # the rate-limit doc's schedule: 3, 6, 12, 24, 48 s
MAX_RETRIES = 5
MAX_PAGE_NO = 100  # page_no may not exceed 100 ...
MAX_PAGE_SIZE = 100  # ... nor page_size: 10,000 orders per time window at most
DECRYPT_BATCH_SIZE = 1000  # values per decrypt.batch call (Youzan accepts up to 10,000)
TOKEN_MARGIN_SECONDS = 300  # refresh a cached token this long before it expires
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
WINDOW_PARAMS = {
    "created": ("start_created", "end_created"),
    "update": ("start_update", "end_update"),
}
CIPHERTEXT = re.compile(r"\$[A-Za-z0-9+/]+={0,2}\$\d+\$")


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
            message = body.get("message") or body.get("msg") or "request failed"
            return _int(body.get("code")), str(message)
        if status == 200:
            return None
    return status, f"HTTP {status}"


def _int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


class YouzanClient:
    """A small synchronous client for the Youzan calls the CDP needs. Not thread-safe.

    `sleep` is injectable so tests never wait; `undecrypted` counts, after `decrypt_orders`,
    the ciphertexts the decrypt API gave no plaintext for (they are landed as sent)."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        kdt_id: str,
        *,
        page_size: int = MAX_PAGE_SIZE,
        max_page_no: int = MAX_PAGE_NO,
        max_retries: int = MAX_RETRIES,
        backoff_seconds: float = BACKOFF_SECONDS,
        decrypt_batch_size: int = DECRYPT_BATCH_SIZE,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self.kdt_id = str(kdt_id)
        self.page_size = max(1, min(page_size, MAX_PAGE_SIZE))
        self.max_page_no = max(1, min(max_page_no, MAX_PAGE_NO))
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.decrypt_batch_size = max(1, decrypt_batch_size)
        self.sleep = sleep
        self.timeout = timeout
        self.clock = clock
        self.undecrypted = 0
        self._token: str | None = None
        self._expires_at = 0.0  # epoch seconds

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
                "check CDP_YOUZAN__CLIENT_ID / CLIENT_SECRET / KDT_ID and that the shop still "
                "grants the app",
                code,
            )
        self._token = str(data["access_token"])
        expires = _int(data.get("expires"))
        # `expires` is epoch milliseconds; without it assume a short life rather than forever.
        self._expires_at = expires / 1000 if expires else self.clock() + 2 * TOKEN_MARGIN_SECONDS
        return self._token

    # -- API calls --------------------------------------------------------------------------

    def backoff(self, attempt: int) -> float:
        """Delay before retry `attempt` (0-based): 3, 6, 12, 24, 48 s as Youzan recommends
        (doubling from `backoff_seconds`)."""
        return self.backoff_seconds * 2**attempt

    def call(self, api: str, version: str, params: dict, *, what: str | None = None) -> dict:
        """`data` of one API call. A token error (4201/4202/4203) refreshes the token once and
        retries; a rate limit (4101, 500100004, 123000042) is retried after the back-off, at most
        max_retries times. `what` names the call in errors."""
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
                    hint = "; the shop may have revoked the grant" if code == 4201 else ""
                    raise YouzanApiError(
                        f"{what}: token refused again after a refresh: {message} (code {code})"
                        + hint,
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

    # -- orders -----------------------------------------------------------------------------

    def iter_orders(self, start: datetime, end: datetime, *, by: str = "update") -> Iterator[dict]:
        """Every element of data.full_order_info_list whose `by` time (created or update) is in
        [start, end] (shop wall time), as received (personal fields still ciphertext), each tid
        once. Windows over 10,000 orders are split."""
        if by not in WINDOW_PARAMS:
            raise ValueError(f"by must be one of {sorted(WINDOW_PARAMS)}, not {by!r}")
        seen: set[str] = set()
        for item in self._window(start, end, by):
            tid = _tid(item)
            if tid is not None:
                if tid in seen:  # a page shifted under us, or two windows share a second
                    continue
                seen.add(tid)
            yield item

    def _page(self, start: datetime, end: datetime, by: str, page_no: int) -> dict:
        first, last = WINDOW_PARAMS[by]
        return self.call(
            TRADES_API,
            TRADES_VERSION,
            {
                "page_no": page_no,
                "page_size": self.page_size,
                first: start.strftime(TIME_FORMAT),
                last: end.strftime(TIME_FORMAT),
            },
            what=f"{TRADES_API} {start:%Y-%m-%d %H:%M:%S}..{end:%H:%M:%S} page {page_no}",
        )

    def _window(self, start: datetime, end: datetime, by: str) -> Iterator[dict]:
        data = self._page(start, end, by, 1)
        items = list(data.get("full_order_info_list") or [])
        total = _int(data.get("total_results")) or 0
        size = len(items)  # the server may cap page_size below ours
        if size and total > self.max_page_no * size:
            seconds = int((end - start).total_seconds())
            if seconds < 2:
                raise YouzanApiError(
                    f"{TRADES_API}: {total} orders between {start} and {end}, more than "
                    f"{self.max_page_no} pages of {size} reach, and the window cannot be split"
                )
            # Two halves sharing their middle second (the API wants end > start): each tid once.
            middle = start + timedelta(seconds=seconds // 2)
            yield from self._window(start, middle, by)
            yield from self._window(middle, end, by)
            return
        yield from items
        pages = min(math.ceil(total / size), self.max_page_no) if size else 1
        for page_no in range(2, pages + 1):
            page = self._page(start, end, by, page_no).get("full_order_info_list") or []
            if not page:
                return
            yield from page

    # -- decryption -------------------------------------------------------------------------

    def decrypt(self, values: Iterable[str]) -> dict[str, str]:
        """ciphertext -> plaintext of `values` through youzan.cloud.secret.decrypt.batch, in
        batches of `decrypt_batch_size`; a value the API gives nothing for is left out."""
        unique = list(dict.fromkeys(v for v in values if v))  # no empty strings (code 10500)
        plain: dict[str, str] = {}
        for i in range(0, len(unique), self.decrypt_batch_size):
            batch = unique[i : i + self.decrypt_batch_size]
            data = self.call(
                DECRYPT_API,
                DECRYPT_VERSION,
                {"sources": batch},
                what=f"{DECRYPT_API} ({len(batch)} values)",
            )
            plain.update({k: v for k, v in data.items() if k in batch and isinstance(v, str)})
        return plain

    def decrypt_orders(self, items: list[dict]) -> list[dict]:
        """`items` with every ciphertext leaf replaced by its plaintext (new objects)."""
        found: list[str] = []
        for item in items:
            _ciphertexts(item, found)
        plain = self.decrypt(found)
        self.undecrypted = len(set(found) - set(plain))
        return [_decrypted(item, plain) for item in items]


def _ciphertexts(value: object, out: list[str]) -> None:
    if isinstance(value, dict):
        for v in value.values():
            _ciphertexts(v, out)
    elif isinstance(value, list):
        for v in value:
            _ciphertexts(v, out)
    elif isinstance(value, str) and CIPHERTEXT.fullmatch(value):
        out.append(value)


def _decrypted(value: object, plain: dict[str, str]) -> object:
    if isinstance(value, dict):
        return {k: _decrypted(v, plain) for k, v in value.items()}
    if isinstance(value, list):
        return [_decrypted(v, plain) for v in value]
    if isinstance(value, str):
        return plain.get(value, value)
    return value


def _tid(item: object) -> str | None:
    try:
        tid = item["full_order_info"]["order_info"]["tid"]  # type: ignore[index]
    except (KeyError, TypeError):
        return None
    return str(tid) if tid else None


def landing_file(day: date, settings: Settings) -> Path:
    return Path(settings.landing_root) / "youzan" / "orders" / f"dt={day}" / "orders.jsonl"


def pull_orders(
    day: date,
    settings: Settings | None = None,
    client: YouzanClient | None = None,
    *,
    by: str = "update",
) -> Path:
    """Land the orders updated (or, by="created", created) on `day` (Asia/Shanghai) as JSON
    lines, their personal fields decrypted; returns the file.

    The whole day is pulled and decrypted before anything is written; the file then appears
    atomically (temp file in the same folder + rename), replacing an earlier pull of the day."""
    settings = settings or get_settings()
    client = client or YouzanClient.from_settings(settings)
    start = datetime.combine(day, dtime.min)
    end = datetime.combine(day, dtime(23, 59, 59))
    items = client.decrypt_orders(list(client.iter_orders(start, end, by=by)))
    lines = [json.dumps(item, ensure_ascii=False, separators=(",", ":")) for item in items]
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
