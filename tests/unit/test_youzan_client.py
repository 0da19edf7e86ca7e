"""The Youzan orders client against a loopback Youzan API: pages, token refresh, rate limits."""

from __future__ import annotations

import json
from datetime import date, datetime

import pytest

from jobs.common.errors import CdpError
from jobs.ingest.youzan import YouzanClient, landing_file, pull_orders
from tests.fixtures.youzan_server import YouzanServer, make_order

DAY = date(2026, 11, 22)
START, END = datetime(2026, 11, 22, 0, 0, 0), datetime(2026, 11, 22, 23, 59, 59)


def _orders(n: int, day: date = DAY) -> list[dict]:
    return [
        make_order(f"E{day:%Y%m%d}{i:015d}", f"{day} {i // 60 % 24:02d}:{i % 60:02d}:00")
        for i in range(n)
    ]


def _client(server: YouzanServer, delays: list[float] | None = None, **kw) -> YouzanClient:
    sleep = delays.append if delays is not None else (lambda _s: None)
    return YouzanClient(
        server.base_url,
        server.client_id,
        server.client_secret,
        server.kdt_id,
        sleep=sleep,
        **kw,
    )


def _tids(items) -> list[str]:
    return [i["full_order_info"]["order_info"]["tid"] for i in items]


def test_pagination_collects_every_order_once():
    orders = _orders(7)
    other_day = _orders(2, date(2026, 11, 23))
    with YouzanServer(orders + other_day, page_size_cap=2) as server:
        items = list(_client(server, page_size=100).iter_orders(START, END))
        pages = [c.page_no for c in server.trade_calls]
    assert sorted(_tids(items)) == sorted(_tids(orders))
    assert len(set(_tids(items))) == 7
    assert pages == [1, 2, 3, 4]  # the server capped page_size at 2: the total decides the end
    assert items[0] == orders[-1]  # newest first, the API object unchanged


def test_empty_day_makes_one_call():
    with YouzanServer([]) as server:
        assert list(_client(server).iter_orders(START, END)) == []
        assert len(server.trade_calls) == 1


def test_token_is_cached():
    with YouzanServer(_orders(5), page_size_cap=2) as server:
        list(_client(server).iter_orders(START, END))
        assert len(server.token_calls) == 1


def test_expired_token_mid_pull_is_refreshed_and_the_pull_continues():
    orders = _orders(6)
    with YouzanServer(orders, page_size_cap=2, token_expires_after=2) as server:
        items = list(_client(server).iter_orders(START, END))
        calls = server.calls
    assert sorted(_tids(items)) == sorted(_tids(orders))
    assert len([c for c in calls if c.path == "/auth/token"]) == 2
    assert [c.error for c in calls if c.page_no == 3] == [4202, None]
    first, second = (c.token for c in calls if c.path == "/auth/token")
    assert {c.token for c in calls if c.page_no in (1, 2)} == {first}
    assert [c.token for c in calls if c.page_no == 3] == [first, second]


def test_bad_credentials_fail_with_a_cdp_error():
    with YouzanServer(_orders(1)) as server:
        client = YouzanClient(server.base_url, server.client_id, "wrong", server.kdt_id)
        with pytest.raises(CdpError, match=r"token request .* failed"):
            list(client.iter_orders(START, END))


def test_rate_limit_is_retried_with_growing_backoff():
    orders = _orders(3)
    delays: list[float] = []
    with YouzanServer(orders, page_size_cap=2, rate_limit_first=3) as server:
        items = list(_client(server, delays, backoff_seconds=0.5).iter_orders(START, END))
        per_page = [(c.page_no, c.error) for c in server.trade_calls]
    assert sorted(_tids(items)) == sorted(_tids(orders))
    assert per_page == [(1, 429)] * 3 + [(1, None)] + [(2, 429)] * 3 + [(2, None)]
    assert len(delays) == 6
    for page_delays in (delays[:3], delays[3:]):
        assert page_delays == sorted(page_delays)
        assert len(set(page_delays)) == 3
        assert 0.5 <= page_delays[0] <= 0.75
        assert 2.0 <= page_delays[2] <= 3.0


def test_rate_limit_beyond_max_retries_names_the_page():
    delays: list[float] = []
    with YouzanServer(_orders(3), page_size_cap=2, rate_limit_first=99) as server:
        client = _client(server, delays, max_retries=3)
        with pytest.raises(CdpError, match=r"youzan\.trades\.sold\.get page 1: still rate-limited"):
            list(client.iter_orders(START, END))
        assert len(server.trade_calls) == 4  # the first try + 3 retries, then it gives up
    assert len(delays) == 3
    assert delays == sorted(delays)


def test_pull_orders_writes_jsonl_atomically_and_a_repull_replaces_it(lake):
    orders = _orders(5)
    with YouzanServer(orders, page_size_cap=2) as server:
        path = pull_orders(DAY, settings=lake, client=_client(server))
        assert path == landing_file(DAY, lake)
        assert path.name == "orders.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines()
        landed = [json.loads(line) for line in lines]
        assert sorted(_tids(landed)) == sorted(_tids(orders))
        assert json.loads(lines[0]) == orders[-1]  # exactly as received
        assert list(path.parent.iterdir()) == [path]  # no temp file left behind

        server.state.orders = orders[:2]  # two orders later cancelled and purged upstream
        again = pull_orders(DAY, settings=lake, client=_client(server))
    assert again == path
    assert len(path.read_text(encoding="utf-8").splitlines()) == 2
    assert list(path.parent.iterdir()) == [path]


def test_failed_pull_keeps_the_previous_file(lake):
    with YouzanServer(_orders(3)) as server:
        path = pull_orders(DAY, settings=lake, client=_client(server))
        before = path.read_bytes()
    with (
        YouzanServer(_orders(3), rate_limit_first=99) as server,
        pytest.raises(CdpError, match="page 1"),
    ):
        pull_orders(DAY, settings=lake, client=_client(server, max_retries=1))
    assert path.read_bytes() == before
    assert list(path.parent.iterdir()) == [path]


def test_credentials_come_from_the_environment(monkeypatch, lake):
    from jobs.common.settings import Settings

    monkeypatch.delenv("CDP_YOUZAN__CLIENT_SECRET", raising=False)
    with pytest.raises(CdpError, match="CDP_YOUZAN__CLIENT_SECRET"):
        YouzanClient.from_settings(Settings())
    monkeypatch.setenv("CDP_YOUZAN__CLIENT_ID", "cid")
    monkeypatch.setenv("CDP_YOUZAN__CLIENT_SECRET", "s3cret")
    monkeypatch.setenv("CDP_YOUZAN__KDT_ID", "123")
    client = YouzanClient.from_settings(Settings())
    assert (client.client_id, client.kdt_id) == ("cid", "123")
    assert "s3cret" not in repr(client)
    assert "s3cret" not in repr(Settings().youzan)
