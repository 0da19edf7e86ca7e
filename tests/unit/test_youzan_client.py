"""The Youzan orders client against a loopback Youzan API: pages and windows, token errors,
rate limits (all over HTTP 200), per-shop ciphertext and its decryption, landing."""

from __future__ import annotations

import csv
import json
import math
import urllib.request
from datetime import date, datetime, timedelta

import pytest

from jobs.common.errors import CdpError
from jobs.ingest.youzan import YouzanApiError, YouzanClient, landing_file, pull_orders
from jobs.simulator import Mess, simulate
from jobs.simulator.world import YOUZAN_KDT_ID
from tests.fixtures.youzan_server import YouzanServer, make_order

DAY = date(2026, 11, 22)
START, END = datetime(2026, 11, 22, 0, 0, 0), datetime(2026, 11, 22, 23, 59, 59)
PII = (
    ("buyer_info", "buyer_phone"),
    ("address_info", "receiver_name"),
    ("address_info", "receiver_tel"),
    ("address_info", "delivery_address"),
)
NICK = (("buyer_info", "fans_nickname"),)


def _orders(n: int, day: date = DAY, *, every: int = 60) -> list[dict]:
    """n orders of `day`, one every `every` seconds from midnight, each with its own phone."""
    out = []
    for i in range(n):
        at = datetime.combine(day, datetime.min.time()) + timedelta(seconds=i * every)
        out.append(
            make_order(
                f"E{day:%Y%m%d}{i:015d}",
                f"{at:%Y-%m-%d %H:%M:%S}",
                buyer_phone=f"139{i:08d}",
                receiver_name=f"王{i}",
                fans_id=1_000_000 + i,
                fans_nickname=f"小{i}",
            )
        )
    return out


def _client(server: YouzanServer, delays: list[float] | None = None, **kw) -> YouzanClient:
    sleep = delays.append if delays is not None else (lambda _s: None)
    return YouzanClient(
        server.base_url, server.client_id, server.client_secret, server.kdt_id, sleep=sleep, **kw
    )


def _tids(items) -> list[str]:
    return [i["full_order_info"]["order_info"]["tid"] for i in items]


def _get(order: dict, group: str, name: str) -> object:
    return order["full_order_info"][group].get(name)


# --- pages and windows ------------------------------------------------------------------------


def test_pagination_collects_every_order_once():
    orders = _orders(7)
    other_day = _orders(2, date(2026, 11, 23))
    with YouzanServer(orders + other_day, page_size_cap=2) as server:
        items = list(_client(server, page_size=100).iter_orders(START, END))
        pages = [c.page_no for c in server.trade_calls]
        assert items[0] == server.served(orders[-1])  # newest first, the API object unchanged
    assert sorted(_tids(items)) == sorted(_tids(orders))
    assert len(set(_tids(items))) == 7
    assert pages == [1, 2, 3, 4]  # the server capped page_size at 2: the total decides the end


def test_empty_day_makes_one_call():
    with YouzanServer([]) as server:
        assert list(_client(server).iter_orders(START, END)) == []
        assert len(server.trade_calls) == 1


def test_page_size_and_page_no_never_exceed_100():
    client = YouzanClient("http://127.0.0.1:9", "c", "s", "1", page_size=500, max_page_no=500)
    assert (client.page_size, client.max_page_no) == (100, 100)


def test_a_window_over_the_page_limit_is_split_and_each_order_kept_once():
    # 30 orders, one every 2800 s, and one exactly at the day's middle second (11:59:59),
    # which both halves include. The server reaches 2 pages of 2 = 4 orders per window.
    orders = _orders(30, every=2800)
    noon = make_order("E20261122999999999999999", "2026-11-22 11:59:59")
    with YouzanServer([*orders, noon], page_size_cap=2, max_page_no=2) as server:
        items = list(_client(server, max_page_no=2).iter_orders(START, END, by="created"))
        calls = server.trade_calls
    assert sorted(_tids(items)) == sorted(_tids([*orders, noon]))
    assert all(c.error is None and c.page_no <= 2 for c in calls)
    windows = {c.window for c in calls}
    assert len(windows) > 8  # split down to windows of at most 4 orders
    assert ("2026-11-22 00:00:00", "2026-11-22 11:59:59") in windows
    assert ("2026-11-22 11:59:59", "2026-11-22 23:59:59") in windows
    # every window that served pages held at most 4 orders, and was fully read
    served = [c.window for c in calls if c.page_no == 2]
    assert served
    assert all(w in windows for w in served)


def test_too_many_orders_in_one_second_fail_loudly():
    same = [make_order(f"E2026112200000000000000{i:02d}", "2026-11-22 10:00:00") for i in range(5)]
    with YouzanServer(same, page_size_cap=2, max_page_no=2) as server:
        client = _client(server, max_page_no=2)
        with pytest.raises(YouzanApiError, match="cannot be split"):
            list(client.iter_orders(START, END))


def test_update_window_brings_orders_changed_that_day():
    yesterday = make_order(
        "E20261121000000000000001",
        "2026-11-21 20:00:00",
        status="TRADE_SUCCESS",
        update_time="2026-11-22 09:30:00",  # delivered and confirmed today
    )
    today = _orders(2)
    with YouzanServer([yesterday, *today]) as server:
        by_update = _tids(_client(server).iter_orders(START, END, by="update"))
        by_created = _tids(_client(server).iter_orders(START, END, by="created"))
        windows = {c.window for c in server.trade_calls}
    assert sorted(by_update) == sorted(_tids([yesterday, *today]))
    assert sorted(by_created) == sorted(_tids(today))
    assert windows == {("2026-11-22 00:00:00", "2026-11-22 23:59:59")}


def test_bad_parameters_are_a_business_error():
    with YouzanServer(_orders(1)) as server:
        client = _client(server)
        with pytest.raises(YouzanApiError, match="error 5001") as err:
            client.call(
                "youzan.trades.sold.get",
                "4.0.4",
                {"page_no": 1, "start_created": "2026-11-22", "end_created": "2026-11-23"},
            )
        assert err.value.code == 5001
        with pytest.raises(YouzanApiError, match="error 5001"):
            client.call("youzan.trades.sold.get", "4.0.4", {"page_no": 101})


# --- tokens -------------------------------------------------------------------------------


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


def test_unknown_token_is_refreshed_once():
    orders = _orders(4)
    with YouzanServer(orders, page_size_cap=2, forget_tokens_after=1) as server:
        items = list(_client(server).iter_orders(START, END))
        errors = [(c.page_no, c.error) for c in server.trade_calls]
        assert len(server.token_calls) == 2
    assert sorted(_tids(items)) == sorted(_tids(orders))
    assert errors == [(1, None), (2, 4203), (2, None)]


def test_errors_come_over_http_200_in_the_gateway_shape():
    with YouzanServer(_orders(1)) as server:
        request = urllib.request.Request(
            f"{server.base_url}/api/youzan.trades.sold.get/4.0.4",
            data=b'{"page_no": 1}',
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            status, body = response.status, json.loads(response.read())
    assert status == 200
    assert set(body) == {"gw_err_resp"}
    assert body["gw_err_resp"]["err_code"] == 4201  # no token in the URL query
    assert set(body["gw_err_resp"]) == {"trace_id", "err_code", "err_msg"}


def test_a_token_refused_after_its_refresh_fails():
    with YouzanServer(_orders(1), token_expires_after=0) as server:
        with pytest.raises(YouzanApiError, match="token refused again after a refresh") as err:
            list(_client(server).iter_orders(START, END))
        assert err.value.code == 4202
        assert [c.error for c in server.trade_calls] == [4202, 4202]
        assert len(server.token_calls) == 2


def test_a_revoked_grant_fails_at_the_token_endpoint():
    with YouzanServer(_orders(5), page_size_cap=2, revoke_after=1) as server:
        with pytest.raises(YouzanApiError, match=r"token request .* failed: .*code 1103") as err:
            list(_client(server).iter_orders(START, END))
        assert err.value.code == 1103
        assert [c.error for c in server.trade_calls] == [None, 4201]
        assert [c.error for c in server.token_calls] == [None, 1103]


def test_bad_credentials_fail_with_a_cdp_error():
    with YouzanServer(_orders(1)) as server:
        client = YouzanClient(server.base_url, server.client_id, "wrong", server.kdt_id)
        with pytest.raises(CdpError, match=r"token request .* failed") as err:
            list(client.iter_orders(START, END))
        assert err.value.code == 1103


# --- rate limits --------------------------------------------------------------------------


@pytest.mark.parametrize("code", [4101, 500100004, 123000042, 429])
def test_rate_limits_are_retried_after_3_6_12_seconds(code):
    orders = _orders(3)
    delays: list[float] = []
    with YouzanServer(orders, page_size_cap=2, rate_limit_first=3, rate_limit_code=code) as server:
        items = list(_client(server, delays).iter_orders(START, END))
        per_page = [(c.page_no, c.error) for c in server.trade_calls]
    assert sorted(_tids(items)) == sorted(_tids(orders))
    assert per_page == [(1, code)] * 3 + [(1, None)] + [(2, code)] * 3 + [(2, None)]
    assert delays == [3, 6, 12, 3, 6, 12]


def test_rate_limit_beyond_max_retries_names_the_page():
    delays: list[float] = []
    with YouzanServer(_orders(3), page_size_cap=2, rate_limit_first=99) as server:
        client = _client(server, delays)
        with pytest.raises(
            CdpError, match=r"youzan\.trades\.sold\.get .* page 1: still rate-limited"
        ):
            list(client.iter_orders(START, END))
        assert len(server.trade_calls) == 6  # the first try + 5 retries, then it gives up
    assert delays == [3, 6, 12, 24, 48]  # the schedule Youzan's rate-limit doc recommends


# --- ciphertext and decryption ------------------------------------------------------------


def test_personal_fields_come_as_per_shop_ciphertext():
    own = make_order("E20261122000000000000001", "2026-11-22 09:00:00", buyer_phone="13900000001")
    fenxiao = make_order(
        "E20261122000000000000002",
        "2026-11-22 09:05:00",
        buyer_phone="13900000001",  # the same buyer, through a distributor shop
        fenxiao=("160012345", "F1"),
    )
    with YouzanServer([own, fenxiao]) as server:
        items = {_tids([i])[0]: i for i in _client(server).iter_orders(START, END)}
    a, b = items["E20261122000000000000001"], items["E20261122000000000000002"]
    for order, plain in ((a, own), (b, fenxiao)):
        for group, name in PII:
            value = _get(order, group, name)
            assert isinstance(value, str)
            assert value.startswith("$")
            assert value.endswith("$1$")
            assert value != _get(plain, group, name)
        assert _get(order, "buyer_info", "yz_open_id") == _get(plain, "buyer_info", "yz_open_id")
    # one phone, one ciphertext within a shop (buyer_phone and receiver_tel match) ...
    assert _get(a, "buyer_info", "buyer_phone") == _get(a, "address_info", "receiver_tel")
    # ... and another in another shop
    assert _get(a, "buyer_info", "buyer_phone") != _get(b, "buyer_info", "buyer_phone")


def test_decryption_restores_the_orders_in_batches():
    orders = _orders(5)
    with YouzanServer(orders) as server:
        client = _client(server, decrypt_batch_size=4)
        served = list(client.iter_orders(START, END))
        plain = client.decrypt_orders(served)
        calls = server.decrypt_calls
    assert sorted(plain, key=_tids_one) == sorted(orders, key=_tids_one)
    assert client.undecrypted == 0
    # 5 orders x (phone = receiver_tel, name, nickname) + their one shared address: 16 values
    distinct = {json.dumps(_get(o, g, n)) for o in served for g, n in PII + NICK}
    assert len(distinct) == 16
    assert [c.sources for c in calls] == [4] * 4
    assert len(calls) == math.ceil(16 / 4)


def _tids_one(order: dict) -> str:
    return _tids([order])[0]


def test_another_shops_ciphertext_is_left_as_sent_and_counted():
    orders = _orders(2)
    with YouzanServer(orders, kdt_id="44556677") as server, YouzanServer([], kdt_id="999") as other:
        foreign = other.served(orders[0])  # encrypted with a shop this app has no grant for
        client = _client(server)
        plain = client.decrypt_orders([foreign, server.served(orders[1])])
    assert plain[1] == orders[1]
    assert plain[0] == foreign
    assert client.undecrypted == 4


def test_decrypt_api_errors_and_plaintext():
    with YouzanServer([]) as server:
        client = _client(server)
        assert client.decrypt(["13900000000"]) == {"13900000000": "13900000000"}
        with pytest.raises(YouzanApiError, match="error 10500"):
            client.call("youzan.cloud.secret.decrypt.batch", "1.0.0", {"sources": ["", "x"]})
    with (
        YouzanServer([], decrypt_max=2) as server,
        pytest.raises(YouzanApiError, match="error 5001"),
    ):
        _client(server).call(
            "youzan.cloud.secret.decrypt.batch", "1.0.0", {"sources": ["a", "b", "c"]}
        )


# --- landing ------------------------------------------------------------------------------


def test_pull_orders_writes_decrypted_jsonl_atomically_and_a_repull_replaces_it(lake):
    orders = _orders(5)
    with YouzanServer(orders, page_size_cap=2, rate_limit_first=1) as server:
        path = pull_orders(DAY, settings=lake, client=_client(server))
        assert {c.error for c in server.decrypt_calls} == {4101, None}  # decrypt calls retried
        assert path == landing_file(DAY, lake)
        assert path.name == "orders.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines()
        landed = [json.loads(line) for line in lines]
        assert sorted(landed, key=_tids_one) == sorted(orders, key=_tids_one)  # plaintext
        assert json.loads(lines[0]) == orders[-1]  # as received, newest first
        assert "$1$" not in path.read_text(encoding="utf-8")
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


def test_the_simulators_files_are_what_the_connector_lands(tmp_path, lake):
    """A simulated day, served encrypted by the loopback API and pulled by update time, lands
    byte for byte as the simulator wrote it (its damaged lines aside)."""
    out = tmp_path / "world"
    mess = Mess(resync_rate=0.3, late_rate=0.1, gift_rate=0.1)
    simulate(
        out, customers=2500, days=3, seed=4, end=DAY, mess=mess, bad_rate=0.05,
        orders_per_customer_day=1.0, only={"youzan.orders"},
    )  # fmt: skip
    spoiled = set()
    with (out / "_truth" / "records.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["dt"] == str(DAY) and "spoiled" in row["flags"].split("|"):
                spoiled.add(row["record_id"])
    written = (out / "youzan" / "orders" / f"dt={DAY}" / "orders.jsonl").read_text(encoding="utf-8")
    good = []
    for line in written.splitlines():
        try:
            obj = json.loads(line)
            tid = obj["full_order_info"]["order_info"]["tid"]
        except (ValueError, KeyError):
            continue
        if tid not in spoiled:
            good.append(line)
    assert len(good) > 30
    flags_seen = set()
    with (out / "_truth" / "records.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["dt"] == str(DAY):
                flags_seen.update(row["flags"].split("|"))
    assert {"resync", "late", "gift"} <= flags_seen
    with YouzanServer([json.loads(x) for x in good], kdt_id=YOUZAN_KDT_ID, page_size_cap=20) as s:
        path = pull_orders(DAY, settings=lake, client=_client(s, decrypt_batch_size=100))
        assert any("$1$" in json.dumps(c) for c in [s.served(json.loads(good[0]))])
    landed = path.read_text(encoding="utf-8").splitlines()
    assert sorted(landed) == sorted(good)
