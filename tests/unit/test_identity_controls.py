"""Operator blocks (jobs/identity/controls.py): read from a file with clear errors, persisted in
ops.identity_controls, and applied by the graph with the anonymous ids of a blocked device."""

from datetime import datetime

import pyarrow as pa
import pytest

from jobs.common.errors import CdpError
from jobs.identity import graph
from jobs.identity.controls import add_blocks, add_pair, blocks, pairs, read_block_file
from jobs.identity.engine import DuckEngine
from jobs.identity.registry import load_registry

T = datetime(2026, 11, 27, 10, 0)


def test_a_block_file_line_without_a_value_fails_naming_the_line(tmp_path):
    path = tmp_path / "devices.csv"
    path.write_text("identifier_type,identifier,reason\ndevice_id,K1,kiosk\ndevice_id,,x\n")
    with pytest.raises(CdpError, match=r"devices.csv, line 3: identifier_type and identifier"):
        read_block_file(path)
    path.write_text("type,value\ndevice_id,K1\n")
    with pytest.raises(CdpError, match=r"no column\(s\) identifier_type, identifier"):
        read_block_file(path)


def test_blocks_persist_once_per_value_with_the_newest_reason(lake):
    add_blocks([("device_id", "K1", "kiosk"), ("phone", "tok", "call centre")], lake)
    add_blocks([("device_id", "K1", "store tablet SH001")], lake)
    rows = sorted(tuple(r.values()) for r in blocks(lake).to_pylist())
    assert rows == [("device_id", "K1", "store tablet SH001"), ("phone", "tok", "call centre")]
    with pytest.raises(CdpError, match="unknown identifier type 'imei'"):
        add_blocks([("imei", "1", "")], lake)


def test_a_blocked_device_takes_its_anonymous_ids_along():
    engine = DuckEngine()
    rows = [
        ("event", "e1", T, "device_id", None, "K1"),
        ("event", "e1", T, "anonymous_id", None, "a-kiosk"),
        ("event", "e2", T, "device_id", None, "D2"),
        ("event", "e2", T, "anonymous_id", None, "a-own"),
    ]
    columns = ("rule", "record_key", "seen_at", "identifier_type", "namespace", "identifier")
    engine.register("occ", pa.Table.from_pylist([dict(zip(columns, r, strict=True)) for r in rows]))
    graph.block(engine, load_registry(), b"k", [("device_id", "K1", "store tablet")])
    got = {(r["identifier"], r["reason"]) for r in engine.arrow("blocked").to_pylist()}
    assert got == {
        ("K1", "blocked by an operator: store tablet"),
        ("a-kiosk", "seen on blocked device_id K1"),
    }


def test_pairs_persist_and_two_member_cards_cannot_be_merged(lake):
    add_pair("never_merge", ("youzan_open_id", "y1"), ("member_card", "c1"), "complaint", lake)
    add_pair("merge", ("member_card", "c1"), ("wechat_unionid", "u1"), "", lake)
    assert pairs("never_merge", lake) == [
        ("member_card", "c1", "youzan_open_id", "y1", "complaint")
    ]
    assert pairs("merge", lake) == [
        ("member_card", "c1", "wechat_unionid", "u1", "merge by an operator")
    ]
    with pytest.raises(CdpError, match="two member_card values are two people"):
        add_pair("merge", ("member_card", "c1"), ("member_card", "c2"), "", lake)


def test_a_phone_on_more_than_ten_of_a_days_orders_is_a_shops():
    engine = DuckEngine()
    columns = ("rule", "record_key", "seen_at", "identifier_type", "namespace", "identifier")
    rows = [("order_buyer", f"pos|{i}", T, "phone", None, "clerk") for i in range(11)]
    rows += [("order_buyer", f"pos|c{i}", T, "phone", None, "customer") for i in range(10)]
    rows += [("event", f"e{i}", T, "phone", None, "customer") for i in range(5)]  # not orders
    engine.register("occ", pa.Table.from_pylist([dict(zip(columns, r, strict=True)) for r in rows]))
    graph.block(engine, load_registry(), b"k")
    got = {(r["identifier"], r["reason"]) for r in engine.arrow("blocked").to_pylist()}
    assert got == {("clerk", "on more than 10 order_buyer records in one day (registry)")}
