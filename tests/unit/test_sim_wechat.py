"""The WeChat side of the simulated world: mini-program orders, SDK browse events (web, app,
mini-program), WeCom contact callbacks and chat archive, Official Account pushes.

Every file is read back through its ingestion spec; every expectation comes from the world
(`World`/`Person`, rebuilt from the seed) or from the ground truth, never from numbers written
down here: ids are the world's, one person's mini-program orders and events share their ids,
dated events (WeCom adds and deletes, OA follows and unfollows) happen at the times of the
world's consent truth, spoiled lines are all quarantined with a reason.
"""

from __future__ import annotations

import csv
import json
import random
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from jobs.ingest.records import Record, Rejected, parse_file, parse_jsonl
from jobs.ingest.spec import get_spec
from jobs.quality.gate import load_suite
from jobs.simulator import Mess, World, events, simulate, wechat, wecom, writers
from jobs.simulator.context import Day, OrderNumbers
from jobs.simulator.files import spoil_json
from jobs.simulator.mess import JUNK_EMAIL, MessBook
from jobs.simulator.truth import normalize
from jobs.simulator.world import (
    AGENCY_CORP,
    APPS,
    BRAND_CORP,
    OA,
    SHOP_MP,
    STORES,
    staff_identifiers,
)

END = date(2026, 11, 22)
DAYS = 4
SEED = 13
N = 3000
WRITERS = {**wechat.WRITERS, **events.WRITERS, **wecom.WRITERS}
TRUTH = {**wechat.TRUTH, **events.TRUTH, **wecom.TRUTH}
KEYS = list(WRITERS)
SDK_KEYS = [f"{sdk}.events" for sdk in events.SDKS]
META_COLUMNS = {"_source", "_file", "_line", "_batch_id", "_ingested_at", "_logical_date"}
# Fields whose values are not the record's person's own (now), by flag.
EXEMPT = {"junk_id": {"phone", "email"}, "shared_tablet": {"device_id"}, "stale_phone": {"phone"}}


# --- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def world() -> World:
    return World(N, SEED, END)


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clean")
    simulate(out, customers=N, days=DAYS, seed=SEED, end=END, bad_rate=0.0, only=set(KEYS))
    return out


@pytest.fixture(scope="module")
def dirty(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dirty")
    simulate(out, customers=N, days=1, seed=SEED, end=END, bad_rate=0.25, only=set(KEYS))
    return out


def _truth(out: Path) -> dict[tuple[str, str], dict]:
    with (out / "_truth" / "records.csv").open(encoding="utf-8") as fh:
        return {(r["dataset"], r["record_id"]): r for r in csv.DictReader(fh)}


def _read(out: Path, key: str):
    """(day, Record or Rejected) of every landing file of a dataset, through its spec."""
    spec = get_spec(key)
    for path in sorted((out / spec.source / spec.dataset).glob("dt=*/*.jsonl")):
        day = date.fromisoformat(path.parent.name.removeprefix("dt="))
        for item in parse_file(path, spec):
            yield day, item


def _owned(out: Path, key: str, world: World):
    """(values, person or None, truth row) of every parsed record of a dataset."""
    truth = _truth(out)
    info = TRUTH[key]
    for _day, item in _read(out, key):
        assert isinstance(item, Record), item
        row = truth[(key, info.record_id(item.values))]
        person = world.by_id(row["person_id"]) if row["person_id"] else None
        yield item.values, person, row


class Recorder:
    """Stands in for the truth book when a writer is run for one day by hand."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def record(
        self, dataset, record_id, person_id, day, *, flags=(), ids=(), evidence=(), receiver=""
    ):
        self.rows.append(
            {"dataset": dataset, "record_id": record_id, "person_id": person_id, "day": day,
             "flags": set(flags), "ids": list(ids), "evidence": list(evidence)}
        )  # fmt: skip

    def holder(self, *args, **kwargs) -> None:  # pragma: no cover - not used by these writers
        raise AssertionError("no holders expected")


def _run(out: Path, world: World, key: str, day: date, *, bad_rate: float = 0.0):
    """Run one writer for one day of `world` (any day of its history): (written, parsed records
    with their truth rows)."""
    recorder = Recorder()
    ctx = Day(
        out=out, day=day, index=0, world=world, seed=world.seed,
        rng=random.Random(f"{world.seed}:{key}:{day}"), bad_rate=bad_rate,
        mess=MessBook(Mess(), world.seed), volume=1.0, truth=recorder, seq=OrderNumbers(),
        handoff={},
    )  # fmt: skip
    written = WRITERS[key](ctx)
    spec = get_spec(key)
    [path] = (out / spec.source / spec.dataset / f"dt={day}").glob("*.jsonl")
    owner = {r["record_id"]: r for r in recorder.rows}
    parsed = [
        (i.values, owner[TRUTH[key].record_id(i.values)])
        for i in parse_file(path, spec)
        if isinstance(i, Record)
    ]
    return written, recorder.rows, parsed, path


def _days_with(world: World, when, k: int = 3) -> list[date]:
    """The first `k` days (of the world's last two years) on which `when(person)` happens."""
    start = datetime.combine(END - timedelta(days=730), datetime.min.time())
    days = sorted({t.date() for p in world if (t := when(p)) is not None and t >= start})
    assert days, "the world has no such event in two years"
    return days[:k]


# --- every dataset ----------------------------------------------------------------------------


def test_registered_with_the_simulator(clean):
    assert set(KEYS) <= set(writers())
    truth = _truth(clean)
    for key in KEYS:
        spec = get_spec(key)
        for offset in range(DAYS):
            day = END - timedelta(days=offset)
            assert list((clean / spec.source / spec.dataset / f"dt={day}").glob("*.jsonl")), key
        assert any(k == key for k, _rid in truth), f"{key}: nothing in truth"


@pytest.mark.parametrize("key", KEYS)
def test_clean_days_parse_and_truth_covers_every_record(clean, key):
    truth = _truth(clean)
    info = TRUTH[key]
    items = [item for _day, item in _read(clean, key)]
    assert len(items) > 20, key
    assert [i for i in items if isinstance(i, Rejected)] == []
    ids = [info.record_id(i.values) for i in items]
    assert len(set(ids)) == len(ids), "truth ids are unique, one per record"
    assert set(ids) == {rid for k, rid in truth if k == key}


@pytest.mark.parametrize("key", KEYS)
def test_spoiled_lines_are_exactly_the_rejected_ones_with_a_reason(dirty, key):
    truth = _truth(dirty)
    spec = get_spec(key)
    fields = {c.field for c in spec.columns}
    items = [item for _day, item in _read(dirty, key)]
    rejected = [i for i in items if isinstance(i, Rejected)]
    spoiled = [r for (k, _rid), r in truth.items() if k == key and "spoiled" in r["flags"]]
    assert len(rejected) == len(spoiled) > 3, key
    assert len(items) == sum(1 for k, _rid in truth if k == key)
    for r in rejected:
        if r.field is None:
            assert r.reason.startswith("malformed JSON"), r.reason
        else:
            assert r.field in fields
            assert repr(r.field) in r.reason, r.reason
    assert {r.field is None for r in rejected} == {True, False}
    info = TRUTH[key]
    for item in items:
        if isinstance(item, Record):
            assert "spoiled" not in truth[(key, info.record_id(item.values))]["flags"]


@pytest.mark.parametrize("key", KEYS)
def test_identifiers_in_the_files_resolve_to_the_records_person(clean, key):
    """Read back out of the files through the spec: each id is the record's person's, at that
    time, per `_truth/identifiers.csv` (a chat's guide is a corp member, not an id of anyone)."""
    truth = _truth(clean)
    holders = defaultdict(list)
    with (clean / "_truth" / "identifiers.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            holders[(row["identifier_type"], row["value"])].append(row)
    guides = set(wecom.BRAND_GUIDES)
    info, checked = TRUTH[key], Counter()
    for day, item in _read(clean, key):
        row = truth[(key, info.record_id(item.values))]
        flags = set(filter(None, row["flags"].split("|")))
        written = set()
        for field, kind in info.identifiers.items():
            value = item.values.get(field)
            if value in (None, "") or (key == "wecom.messages" and value in guides):
                continue
            written.add((kind, normalize(kind, value)))
            if any(kind in EXEMPT.get(f, ()) for f in flags):
                continue
            found = holders.get((kind, normalize(kind, value)), [])
            assert found, f"{key}: {field}={value!r} is nobody's {kind}"
            lo = datetime.combine(day - timedelta(days=1), datetime.min.time())
            hi = datetime.combine(day + timedelta(days=1), datetime.min.time())
            assert any(
                r["person_id"] == row["person_id"]
                and (not r["valid_from"] or datetime.fromisoformat(r["valid_from"]) < hi)
                and (not r["valid_to"] or datetime.fromisoformat(r["valid_to"]) > lo)
                for r in found
            ), (key, field, value, row["person_id"], [r["person_id"] for r in found])
            checked[kind] += 1
        assert row["person_id"] or not written, "an id on a record of nobody"
    assert checked, key


@pytest.mark.parametrize("key", KEYS)
def test_truth_gets_exactly_the_ids_the_file_carries(tmp_path, world, key):
    """What a writer tells truth (`ids`) is what the spec reads back out of the record, so the
    `linkable` label can be recomputed from the files (a chat's guide is no person's id)."""
    _written, _rows, parsed, _path = _run(tmp_path, world, key, END)
    assert parsed
    guides = set(wecom.BRAND_GUIDES)
    for values, row in parsed:
        in_file = {
            (kind, normalize(kind, values[field]))
            for field, kind in TRUTH[key].identifiers.items()
            if values.get(field) not in (None, "") and values[field] not in guides
        }
        told = {(kind, normalize(kind, value)) for kind, value in row["ids"]}
        assert told == in_file, (key, row["record_id"])


@pytest.mark.parametrize("key", KEYS)
def test_deterministic_for_a_seed(tmp_path, key):
    def run(name: str, seed: int) -> bytes:
        out = tmp_path / name
        simulate(out, customers=600, days=1, seed=seed, end=END, bad_rate=0.05, only={key})
        spec = get_spec(key)
        [path] = (out / spec.source / spec.dataset / f"dt={END}").glob("*.jsonl")
        return path.read_bytes()

    first = run("a", 1)
    assert first == run("b", 1)
    assert first != run("c", 2)


@pytest.mark.parametrize("key", KEYS)
def test_writers_never_visit_the_whole_world(tmp_path, world, key, monkeypatch):
    def walk(_self):
        raise AssertionError("a writer visited the whole world")

    monkeypatch.setattr(World, "__iter__", walk)
    written, *_ = _run(tmp_path, world, key, END)
    assert written.records > 0


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
    sets = [
        e for e in suite["expectations"]
        if e["type"] == "expect_column_values_to_be_in_set" and e["meta"]["level"] == "block"
    ]  # fmt: skip
    for e in sets:  # a blocking value set is the schema's enum (null aside)
        enum = schema["properties"][e["kwargs"]["column"]]["enum"]
        assert set(e["kwargs"]["value_set"]) == set(enum) - {None}, e["kwargs"]["column"]


# --- mini-program orders and events: one person, one set of WeChat ids -------------------------


def test_miniprogram_orders_carry_the_worlds_ids(clean, world):
    rows = list(_owned(clean, "miniprogram.orders", world))
    assert rows
    members = authorized = 0
    for v, person, _row in rows:
        app = APPS[v["appid"]]
        assert app == person.mp_app
        assert app.kind == "miniprogram"
        assert v["openid"] == person.openid(app)
        assert v["payer_openid"] in (v["openid"], None)
        assert (v["payer_openid"] is None) == (v["order_status"] == "CANCELLED")
        assert v["unionid"] == (person.unionid if app.bound else None)
        created = datetime.fromisoformat(v["created"])
        member = person.member_at(created)
        assert v["member_card"] == (member.card if member else None)
        members += member is not None
        assert v["buyer_phone"] == (person.phone_at(created) if person.authorized_phone else None)
        authorized += v["buyer_phone"] is not None
        if v["invoice_email"]:
            assert v["invoice_email"] in (JUNK_EMAIL, person.email)
    assert 0 < members < len(rows)
    assert 0 < authorized < len(rows)
    assert {APPS[v["appid"]].bound for v, _p, _r in rows} == {True, False}


def test_miniprogram_orders_pay_through_wechat_pay_v3(clean):
    spec = get_spec("miniprogram.orders")
    paths = sorted((clean / spec.source / spec.dataset).glob("dt=*/*.jsonl"))
    orders = [
        json.loads(line) for p in paths for line in p.read_text(encoding="utf-8").splitlines()
    ]
    paid = [o for o in orders if o["payment"]]
    assert paid
    assert len(paid) < len(orders)
    for o in paid:
        pay = o["payment"]
        assert pay["payer"]["openid"] == o["buyer"]["openid"]
        assert pay["appid"] == o["appid"]
        assert pay["out_trade_no"] == o["order_no"]
        assert pay["amount"]["total"] == round(float(o["total_amount"]) * 100)
        assert pay["success_time"].endswith("+08:00")
        assert "T" in pay["success_time"]
        assert len(pay["transaction_id"]) == 28
    assert all(o["status"] == "CANCELLED" for o in orders if not o["payment"])


def test_a_persons_orders_and_events_share_their_wechat_ids(clean, world):
    by_person = defaultdict(set)
    for key in ("miniprogram.orders", "miniprogram.events"):
        for v, person, _row in _owned(clean, key, world):
            by_person[person.person_id].add((v["appid"], v["openid"], v["unionid"]))
    both = [ids for ids in by_person.values() if ids]
    assert all(len(ids) == 1 for ids in both), "one appid/openid/unionid per person"
    events_people = {p.person_id for _v, p, _r in _owned(clean, "miniprogram.events", world)}
    order_people = {p.person_id for _v, p, _r in _owned(clean, "miniprogram.orders", world)}
    assert events_people & order_people


def test_miniprogram_ids_are_per_app_and_unionid_only_when_bound(clean, world):
    apps = defaultdict(set)
    for v, person, _row in _owned(clean, "miniprogram.events", world):
        app = APPS[v["appid"]]
        assert app == person.mp_app
        assert v["openid"] == person.openid(app)
        apps[app.appid].add(v["unionid"] is not None)
        if v["unionid"] is not None:
            assert v["unionid"] == person.unionid
    assert sorted(apps.values(), key=sorted) == [{False}, {True}]
    assert apps[SHOP_MP.appid] == {SHOP_MP.bound}


# --- SDK events ----------------------------------------------------------------------------


@pytest.mark.parametrize("key", SDK_KEYS)
def test_devices_and_members_are_the_worlds(clean, world, key):
    sdk = key.split(".")[0]
    sessions: dict[str, list[dict]] = defaultdict(list)
    tablets = {world.tablet_device(s, "app"): s for s in STORES}
    for v, person, row in _owned(clean, key, world):
        at = datetime.fromisoformat(v["received_at"])
        flags = set(row["flags"].split("|"))
        if "shared_tablet" in flags:
            assert v["device_id"] in tablets
            assert sdk == "app"
        elif "family_tablet" in flags:
            partner = person.household_partner
            assert v["device_id"] == person.family_tablet == partner.family_tablet
        else:
            # the device the person held then (a reset mid-day may fall either side)
            held = {person.device(sdk, at + timedelta(minutes=m)) for m in (-90, 0)}
            assert v["device_id"] in held
            assert v["anonymous_id"] in {
                person.anonymous_id(sdk, at + timedelta(minutes=m)) for m in (-90, 0)
            }
        if v["user_id"] is not None:
            assert v["user_id"] == person.member.card
            assert person.member.signed_up <= at + timedelta(seconds=5)
        if v["event_type"] == "phone_bind":
            assert v["phone"] == person.phone_at(at)
        sessions[v["session_id"]].append(v)
    identified = 0
    for evs in sessions.values():
        kinds = [e["event_type"] for e in evs]
        first = next((i for i, k in enumerate(kinds) if k in ("login", "sign_up")), None)
        if first is None:
            continue
        assert all(e["user_id"] is not None for e in evs[first:]), "a login sticks to the device"
        assert len({e["anonymous_id"] for e in evs}) == 1
        identified += any(e["user_id"] is None for e in evs[:first])
    assert identified >= 3, "some sessions start anonymous and get identified"


def test_miniprogram_phone_authorization_for_members_and_non_members(clean, world):
    binds = [
        (v, p)
        for v, p, _r in _owned(clean, "miniprogram.events", world)
        if v["event_type"] == "phone_bind"
    ]
    assert binds
    for v, person in binds:
        assert person.authorized_phone
        assert v["phone_country_code"] == "86"
    members = {
        person.member_at(datetime.fromisoformat(v["received_at"])) is not None
        for v, person in binds
    }
    assert members == {True, False}


def test_family_and_store_tablets_are_shared(clean, world):
    store_tablets = {world.tablet_device(s, "app") for s in STORES}
    assert store_tablets <= {value for _t, value, _h in staff_identifiers(world)}
    people_on, family = defaultdict(set), 0
    for v, person, row in _owned(clean, "app.events", world):
        flags = set(row["flags"].split("|"))
        if "family_tablet" in flags:
            assert v["device_id"] == person.family_tablet == person.household_partner.family_tablet
            family += 1
        if "shared_tablet" in flags:
            assert v["device_id"] in store_tablets
            people_on[v["device_id"]].add(person.person_id)
    assert family > 0
    assert any(len(pids) > 1 for pids in people_on.values()), "a store tablet serves many"


def test_members_sign_up_on_the_day_the_world_says(tmp_path, world):
    """Store sign-ups on the store's kiosk tablet, mini-program sign-ups in the mini-program."""
    for channel, key in (("store", "app.events"), ("miniprogram", "miniprogram.events")):
        days = _days_with(
            world,
            lambda p, c=channel: p.member.signed_up if p.member and p.member.channel == c else None,
            k=2,
        )
        for day in days:
            _w, _rows, parsed, _path = _run(tmp_path / channel, world, key, day)
            signups = [(v, r) for v, r in parsed if v["event_type"] == "sign_up"]
            expected = {
                p.person_id for p in world.on_day(world.signup, day) if p.member.channel == channel
            }
            assert {r["person_id"] for _v, r in signups} == expected
            for v, r in signups:
                m = world.by_id(r["person_id"]).member
                assert v["user_id"] == m.card
                assert abs(datetime.fromisoformat(v["received_at"]) - m.signed_up) < timedelta(
                    seconds=5
                )
                if channel == "store":
                    assert "shared_tablet" in r["flags"]
                    store = next(s for s in STORES if s.store_id == m.home_store)
                    assert v["device_id"] == world.tablet_device(store, "app")
                    assert v["phone"] == m.phone


def test_campaign_traffic_lands_on_utm_tagged_urls(clean, world):
    rows = [v for v, _p, _r in _owned(clean, "web.events", world)]
    tagged = [v for v in rows if v["page_url"] and "utm_campaign=" in v["page_url"]]
    assert tagged
    for v in tagged:
        assert v["event_type"] == "page_view"
        assert f"utm_campaign={v['utm_campaign']}" in v["page_url"]
        assert f"utm_source={v['utm_source']}" in v["page_url"]
    assert len(tagged) < len(rows) / 3


# --- WeCom ---------------------------------------------------------------------------------


def test_contacts_are_added_and_deleted_when_the_world_says(tmp_path, world):
    """Adds at Person.wecom.added with its State, deletes at Person.wecom.deleted: the times of
    the world's consent events (wecom_add, wecom_delete)."""
    add_days = _days_with(world, lambda p: p.wecom.added if p.wecom else None)
    del_days = _days_with(world, lambda p: p.wecom.deleted if p.wecom else None)
    seen = Counter()
    for day in sorted(set(add_days + del_days)):
        _w, _rows, parsed, _path = _run(tmp_path, world, "wecom.contact_events", day)
        by_type = defaultdict(dict)
        for v, r in parsed:
            if v["corp_id"] == BRAND_CORP.corp_id:
                by_type[v["change_type"]][r["person_id"]] = v
        adds = {**by_type["add_external_contact"], **by_type["add_half_external_contact"]}
        expected = {p.person_id for p in world.on_day(world.wecom_add, day)}
        assert set(adds) == expected
        for pid, v in adds.items():
            person = world.by_id(pid)
            c = person.wecom
            consent = [e for e in person.consent_events if e.channel == "wecom_add"]
            assert [e.at for e in consent] == [c.added]
            assert v["create_time_unix"] == wecom.unix(c.added)
            assert (v["external_userid"], v["guide_user_id"]) == (c.external_userid, c.guide)
            assert (v["state"] or "") == c.state
            assert v["welcome_code"]
            assert v["unionid"] == person.unionid
            assert v["add_way"] == c.add_way
            assert v["remark_mobile"] == (c.remark_mobile or None)
            seen["add"] += 1
        deletes = by_type["del_follow_user"]
        expected = {
            p.person_id
            for p in world.on_day(world.wecom_delete, day)
            if p.wecom.deleted.date() == day
        }
        assert set(deletes) == expected
        for pid, v in deletes.items():
            person = world.by_id(pid)
            consent = [e for e in person.consent_events if e.channel == "wecom_delete"]
            assert [wecom.unix(e.at) for e in consent] == [v["create_time_unix"]]
            seen["delete"] += 1
    assert seen["add"]
    assert seen["delete"]


def test_live_code_states_reach_only_people_they_can_reach(tmp_path, world):
    days = _days_with(world, lambda p: p.wecom.added if p.wecom else None, k=8)
    states = Counter()
    for day in days:
        for v, r in _run(tmp_path, world, "wecom.contact_events", day)[2]:
            if v["state"]:
                person = world.by_id(r["person_id"])
                states[v["state"]] += 1
                platform = {"pkg_card_tmall": "tmall", "pkg_card_jd": "jd", "live_douyin": "douyin",
                            "mp_order_done": "miniprogram"}.get(v["state"])  # fmt: skip
                if platform:
                    assert person.uses(platform), (v["state"], person)
                if v["state"].startswith("store_poster_"):
                    assert person.uses("store")
                assert v["add_way"] == 1
    assert states


def test_contact_change_types_as_wecom_sends_them(clean, world):
    seen = Counter()
    for v, person, _row in _owned(clean, "wecom.contact_events", world):
        seen[v["change_type"]] += 1
        contact = person.wecom if v["corp_id"] == BRAND_CORP.corp_id else person.agency_contact
        assert v["corp_id"] in (BRAND_CORP.corp_id, AGENCY_CORP.corp_id)
        assert v["external_userid"] == contact.external_userid
        if v["corp_id"] == AGENCY_CORP.corp_id:
            assert v["unionid"] is None, "the agency corp is not bound: no unionid"
        elif v["change_type"] in ("add_external_contact", "edit_external_contact"):
            assert v["unionid"] == person.unionid
        if v["change_type"] == "transfer_fail":
            assert v["fail_reason"] in ("customer_refused", "customer_limit_exceed")
            assert v["guide_user_id"] != contact.guide
        if v["delete_source"] is not None:
            assert (v["change_type"], v["delete_source"]) == (
                "del_external_contact",
                "DELETE_BY_TRANSFER",
            )
        if v["remark_mobile"]:
            assert v["remark_mobile"] == contact.remark_mobile
    assert seen["edit_external_contact"] > 10


def test_transfers_fail_or_delete_by_transfer(tmp_path, world):
    """A transfer to another guide either fails (FailReason; the customer stays with their
    guide) or deletes the old guide's relationship (Source=DELETE_BY_TRANSFER, UserID the old
    guide)."""
    seen = Counter()
    for back in range(60):  # rare events: read days until both kinds showed up
        if seen["transfer_fail"] and seen["del_external_contact"]:
            break
        for v, r in _run(tmp_path, world, "wecom.contact_events", END - timedelta(days=back))[2]:
            contact = world.by_id(r["person_id"]).wecom
            if v["change_type"] == "transfer_fail":
                assert v["fail_reason"] in ("customer_refused", "customer_limit_exceed")
                assert v["guide_user_id"] != contact.guide
                assert v["guide_user_id"] in wecom.BRAND_GUIDES
            elif v["delete_source"] is not None:
                assert v["change_type"] == "del_external_contact"
                assert v["delete_source"] == "DELETE_BY_TRANSFER"
                # WeCom's UserID on a deletion by transfer: the guide who lost the customer
                assert v["guide_user_id"] == contact.guide
            else:
                assert v["fail_reason"] is None
                continue
            seen[v["change_type"]] += 1
    assert seen["transfer_fail"]
    assert seen["del_external_contact"]


def test_agency_contacts_are_added_when_the_world_says(tmp_path, world):
    days = _days_with(world, lambda p: p.agency_contact.added if p.agency_contact else None, k=2)
    for day in days:
        parsed = _run(tmp_path, world, "wecom.contact_events", day)[2]
        agency = AGENCY_CORP.corp_id
        adds = {
            r["person_id"]: v
            for v, r in parsed
            if v["corp_id"] == agency and v["change_type"] == "add_external_contact"
        }
        expected = {
            p.person_id for p in world if p.agency_contact and p.agency_contact.added.date() == day
        }
        assert set(adds) == expected
        assert expected
        for pid, v in adds.items():
            a = world.by_id(pid).agency_contact
            assert v["create_time_unix"] == wecom.unix(a.added)
            assert (
                v["external_userid"] == a.external_userid != world.by_id(pid).wecom.external_userid
            )


def test_chats_are_between_the_contact_and_their_guide(clean, world):
    switches = 0
    for v, person, row in _owned(clean, "wecom.messages", world):
        if v["action"] == "switch":
            assert person is None
            assert v["switch_user"] in wecom.BRAND_GUIDES
            assert v["sender"] is None
            assert v["switch_time_ms"] > 0
            switches += 1
            continue
        c = person.wecom
        assert {v["sender"], v["receiver"]} == {c.external_userid, c.guide}
        at = datetime(1970, 1, 1) + timedelta(milliseconds=v["msgtime_ms"], hours=8)
        assert c.added <= at
        assert c.deleted is None or at < c.deleted + timedelta(hours=1)
        day = date.fromisoformat(row["dt"])
        assert day <= at.date() <= day + timedelta(days=1)
    assert switches


# --- the Official Account ----------------------------------------------------------------------


def test_followers_come_and_go_when_the_world_says(tmp_path, world):
    follow_days = _days_with(world, lambda p: p.oa_followed)
    unfollow_days = _days_with(world, lambda p: p.oa_unfollowed)
    seen = Counter()
    for day in sorted(set(follow_days + unfollow_days)):
        parsed = _run(tmp_path, world, "oa.events", day)[2]
        for event, attr, channel in (("subscribe", "oa_followed", "oa_follow"),
                                     ("unsubscribe", "oa_unfollowed", "oa_unfollow")):  # fmt: skip
            got = {r["person_id"]: v for v, r in parsed if v["event"] == event}
            expected = {p.person_id for p in world if (t := getattr(p, attr)) and t.date() == day}
            assert set(got) == expected
            for pid, v in got.items():
                person = world.by_id(pid)
                consent = [e.at for e in person.consent_events if e.channel == channel]
                assert [wecom.unix(t) for t in consent] == [v["create_time_unix"]]
                assert v["openid"] == person.openid(OA)
                seen[event] += 1
                if event == "subscribe" and v["event_key"]:
                    scene = v["event_key"].removeprefix("qrscene_")
                    assert v["event_key"].startswith("qrscene_")
                    assert v["ticket"]
                    assert scene in wecom.oa_scenes(world, person)
    assert seen["subscribe"]
    assert seen["unsubscribe"]


def test_oa_pushes_come_from_followers_only(clean, world):
    seen = Counter()
    for v, person, _row in _owned(clean, "oa.events", world):
        assert v["openid"] == person.openid(OA)
        at = datetime(1970, 1, 1) + timedelta(seconds=v["create_time_unix"], hours=8)
        seen[v["event"]] += 1
        if v["event"] in ("SCAN", "CLICK", "VIEW", "TEMPLATESENDJOBFINISH"):
            assert wecom.follower(person, at)
        if v["event"] == "SCAN":
            assert v["ticket"]
            assert v["event_key"] in wecom.oa_scenes(world, person)
        if v["event"] == "CLICK":
            assert v["event_key"] in wecom.MENU_KEYS
        if v["event"] == "VIEW":
            assert v["event_key"].startswith("https://")
        if v["event"] == "TEMPLATESENDJOBFINISH":
            assert v["template_msg_id"]
            assert v["template_status"]
    assert {"SCAN", "CLICK", "VIEW", "TEMPLATESENDJOBFINISH"} <= set(seen)


def test_spoil_classes_name_the_damaged_field(world):
    person = next(p for p in world if p.wecom is not None)
    event = wecom.callback(person.wecom, "add_external_contact", person.wecom.added)
    spec = get_spec("wecom.contact_events")
    seen = {}
    rng = random.Random(4)
    for _ in range(60):
        line, kind = spoil_json(
            rng, event, required="UserID", wrong_type=("CreateTime", "yesterday"),
            type_path="ChangeType", unknown_type="customer_joined",
        )  # fmt: skip
        [item] = list(parse_jsonl((line + "\n").encode(), spec))
        assert isinstance(item, Rejected), kind
        seen[kind] = item.field
    assert seen == {
        "malformed": None,
        "missing": "guide_user_id",
        "wrong_type": "create_time_unix",
        "unknown_type": "change_type",
    }
    assert event["UserID"] == person.wecom.guide, "the input is not changed"
