"""Browse events, WeCom and Official Account pushes: simulated files parse with their specs, every
spoiled line is rejected with a reason, ground truth covers every record, ids get identified."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

import pytest

from jobs.ingest.records import Record, Rejected, parse_file
from jobs.ingest.simulate import _people, _writers, simulate
from jobs.ingest.simulate_events import (
    SDKS,
    event_writers,
    member_id,
    spoil_json,
    wx_openid,
    wx_unionid,
)
from jobs.ingest.simulate_wecom import OA_APPID, contact_event, external_userid, oa_event
from jobs.ingest.spec import get_spec
from jobs.quality.gate import load_suite

DAY = date(2026, 11, 22)
KEYS = sorted(event_writers())
META_COLUMNS = {"_source", "_file", "_line", "_batch_id", "_ingested_at", "_logical_date"}


@pytest.fixture(scope="module")
def people():
    return _people(random.Random(3), 3000)


def _write(out: Path, key: str, people, *, bad_rate: float, seed: int = 11, day: date = DAY):
    writer = event_writers()[key]
    n, bad, truth = writer(
        out, day, people, random.Random(f"{seed}:{key}:{day}"), bad_rate=bad_rate, seq_start=0
    )
    spec = get_spec(key)
    [path] = (out / spec.source / spec.dataset / f"dt={day}").glob("*.jsonl")
    return n, bad, truth, path, spec


def _record_id(key: str, values: dict) -> str:
    """The id ground truth uses, rebuilt from the parsed fields (not from the simulator)."""
    if key.endswith(".events") and key != "oa.events":
        return values["event_id"]
    if key == "wecom.messages":
        return values["msgid"]
    if key == "wecom.contact_events":
        parts = ("external_userid", "guide_user_id", "change_type", "create_time_unix")
    else:
        parts = ("openid", "event", "create_time_unix")
    return "|".join(str(values[p]) for p in parts)


@pytest.mark.parametrize("key", KEYS)
def test_clean_day_parses_every_line_and_truth_covers_it(tmp_path, people, key):
    n, bad, truth, path, spec = _write(tmp_path, key, people, bad_rate=0.0)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert n == len(lines) > 10
    assert bad == 0
    items = list(parse_file(path, spec))
    assert [i for i in items if isinstance(i, Rejected)] == []
    assert len(items) == len(lines)
    owner = {rid: pid for _s, rid, pid in truth}
    assert len(owner) == len(truth) == len(lines), "truth ids are unique, one per line"
    assert {s for s, _r, _p in truth} == {spec.source}
    assert {_record_id(key, i.values) for i in items} == set(owner)


@pytest.mark.parametrize("key", KEYS)
def test_spoiled_lines_are_all_rejected_with_a_reason(tmp_path, people, key):
    n, bad, truth, path, spec = _write(tmp_path, key, people, bad_rate=0.25, seed=5)
    assert bad > 3
    items = list(parse_file(path, spec))
    assert len(items) == n
    rejected = [i for i in items if isinstance(i, Rejected)]
    assert len(rejected) == bad
    fields = {c.field for c in spec.columns}
    for r in rejected:
        if r.field is None:
            assert r.reason.startswith("malformed JSON")
        else:
            assert r.field in fields
            assert repr(r.field) in r.reason
    assert {r.field is None for r in rejected} == {True, False}
    owner = {rid for _s, rid, _p in truth}
    assert {_record_id(key, i.values) for i in items if isinstance(i, Record)} <= owner


def test_spoil_classes_name_the_damaged_field():
    event = contact_event(random.Random(1), _people(random.Random(2), 1)[0], DAY)
    spec = get_spec("wecom.contact_events")
    seen = {}
    rng = random.Random(4)
    for _ in range(60):
        line, kind = spoil_json(
            rng,
            event,
            required="UserID",
            wrong_type=("CreateTime", "yesterday"),
            type_path="ChangeType",
            unknown_type="transfer_fail",
        )
        [item] = _parse_lines(spec, [line])
        assert isinstance(item, Rejected), kind
        seen[kind] = item.field
    assert seen == {
        "malformed": None,
        "missing": "guide_user_id",
        "wrong_type": "create_time_unix",
        "unknown_type": "change_type",
    }
    assert "UserID" in json.dumps(event), "the input is not changed"


def _parse_lines(spec, lines: list[str]) -> list:
    from jobs.ingest.records import parse_jsonl

    return list(parse_jsonl(("\n".join(lines) + "\n").encode(), spec))


def _days(out: Path, key: str, people, days: int):
    """Parsed records of `days` days with their true person."""
    rows = []
    for offset in range(days):
        day = DAY - timedelta(days=offset)
        _n, _b, truth, path, spec = _write(out, key, people, bad_rate=0.0, day=day)
        owner = {rid: pid for _s, rid, pid in truth}
        for item in parse_file(path, spec):
            rows.append((item.values, owner[_record_id(key, item.values)]))
    return rows


@pytest.mark.parametrize("source", sorted(SDKS))
def test_anonymous_ids_get_identified_by_login_or_phone_bind(tmp_path, people, source):
    by_person = {p.person_id: p for p in people}
    rows = _days(tmp_path, f"{source}.events", people, days=2)
    sessions: dict[str, list[dict]] = defaultdict(list)
    for values, pid in rows:
        # A member id always belongs to the person truly behind the event.
        if values["user_id"] is not None:
            assert values["user_id"] == member_id(by_person[pid])
        if values["event_type"] == "phone_bind":
            assert values["phone"] == by_person[pid].phone
        sessions[values["session_id"]].append(values)
    identified = 0
    for events in sessions.values():
        kinds = [e["event_type"] for e in events]
        first = next((i for i, k in enumerate(kinds) if k in ("login", "phone_bind")), None)
        if first is None:
            continue
        # From the login on, the same device carries the member id.
        assert all(e["user_id"] is not None for e in events[first:])
        assert len({e["anonymous_id"] for e in events}) == 1
        if any(e["user_id"] is None for e in events[:first]):
            identified += 1
    assert identified >= 5, "some sessions start anonymous and get identified"


def test_miniprogram_ids_are_per_app_and_unionid_only_when_bound(tmp_path, people):
    by_person = {p.person_id: p for p in people}
    rows = _days(tmp_path, "miniprogram.events", people, days=1)
    apps = defaultdict(set)
    for values, pid in rows:
        assert values["openid"] == wx_openid(pid, values["appid"])
        apps[values["appid"]].add(values["unionid"] is not None)
        if values["unionid"] is not None:
            assert values["unionid"] == wx_unionid(by_person[pid].person_id)
    assert sorted(apps.values(), key=sorted) == [{False}, {True}]


def test_family_tablets_are_shared_by_two_people(tmp_path, people):
    users = defaultdict(set)
    for values, pid in _days(tmp_path, "app.events", people, days=12):
        users[values["device_id"]].add(pid)
    shared = [d for d, pids in users.items() if len(pids) > 1]
    assert shared, "a family tablet shows up under two people"
    assert all(len(users[d]) == 2 for d in shared)
    assert len(shared) < 0.05 * len(users)


def test_campaign_traffic_lands_on_utm_tagged_urls(tmp_path, people):
    rows = [v for v, _p in _days(tmp_path, "web.events", people, days=1)]
    tagged = [v for v in rows if v["page_url"] and "utm_campaign=" in v["page_url"]]
    assert tagged
    for v in tagged:
        assert v["event_type"] == "page_view"
        assert f"utm_campaign={v['utm_campaign']}" in v["page_url"]
        assert f"utm_source={v['utm_source']}" in v["page_url"]
    assert len(tagged) < len(rows) / 3


def test_wecom_and_oa_ids_belong_to_the_true_person(tmp_path, people):
    by_person = {p.person_id: p for p in people}
    for values, pid in _days(tmp_path, "wecom.contact_events", people, days=2):
        assert values["external_userid"] == external_userid(by_person[pid])
        if values["change_type"] == "add_external_contact":
            assert values["welcome_code"]
        else:
            assert values["state"] is None
    for values, pid in _days(tmp_path, "oa.events", people, days=2):
        assert values["openid"] == wx_openid(pid, OA_APPID)
    for values, pid in _days(tmp_path, "wecom.messages", people, days=2):
        ext = external_userid(by_person[pid])
        assert ext in (values["sender"], values["receiver"])


def test_oa_subscribe_through_a_parametric_qr_code():
    person = _people(random.Random(2), 1)[0]
    rng = random.Random(9)
    keys = {oa_event(rng, person, DAY, "subscribe").get("EventKey") for _ in range(50)}
    assert "" in keys
    assert any(k.startswith("qrscene_") for k in keys if k)


@pytest.mark.parametrize("key", KEYS)
def test_streams_are_deterministic_for_a_seed(tmp_path, people, key):
    first = _write(tmp_path / "a", key, people, bad_rate=0.05, seed=1)[3].read_bytes()
    again = _write(tmp_path / "b", key, people, bad_rate=0.05, seed=1)[3].read_bytes()
    other = _write(tmp_path / "c", key, people, bad_rate=0.05, seed=2)[3].read_bytes()
    assert first == again
    assert first != other


class _NoIteration(Sequence):
    """A world that may be indexed but never walked: a day must cost what it writes."""

    def __init__(self, people):
        self._people = people

    def __len__(self) -> int:
        return len(self._people)

    def __getitem__(self, index):
        return self._people[index]

    def __iter__(self):
        raise AssertionError("a writer visited the whole world")


@pytest.mark.parametrize("key", KEYS)
def test_writers_sample_the_day_without_visiting_everyone(tmp_path, people, key):
    n, _bad, _truth, _path, _spec = _write(tmp_path, key, _NoIteration(people), bad_rate=0.0)
    assert n > 0


def test_registered_with_the_simulator(tmp_path):
    assert set(KEYS) <= set(_writers())
    summary = simulate(tmp_path, customers=200, days=1, seed=4, end=DAY)
    for key in KEYS:
        spec = get_spec(key)
        assert list((tmp_path / spec.source / spec.dataset / f"dt={DAY}").glob("*.jsonl"))
        assert summary.records[key] > 0
    truth = (tmp_path / "_truth" / "records.csv").read_text(encoding="utf-8")
    for source in ("web", "app", "miniprogram", "wecom", "oa"):
        assert f"\n{source}," in truth


@pytest.mark.parametrize("key", KEYS)
def test_spec_schema_and_suite_agree(key):
    spec = get_spec(key)
    schema = spec.json_schema()
    fields = {c.field for c in spec.columns}
    assert set(schema["properties"]) == fields
    assert set(schema["required"]) <= fields
    assert schema["additionalProperties"] is False
    suite = load_suite(f"bronze.{spec.bronze_table}")
    columns = {e["kwargs"]["column"] for e in suite["expectations"] if "column" in e["kwargs"]}
    assert columns <= fields | META_COLUMNS
    types = next(
        e
        for e in suite["expectations"]
        if e["type"] == "expect_column_values_to_be_in_set" and e["meta"]["level"] == "block"
    )
    enum = schema["properties"][types["kwargs"]["column"]]["enum"]
    assert set(types["kwargs"]["value_set"]) == set(enum)
