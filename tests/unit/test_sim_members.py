"""The brand's own systems as the simulator writes them: store POS receipts, the ERP's copy of
marketplace orders, the CRM's loyalty exports, the two member lists and the consent logs.

Every file is read back through its ingestion spec; expectations come from the world itself
(rebuilt from the seed) and from `_truth/`, never from numbers written down here.
"""

from __future__ import annotations

import csv
import hashlib
import random
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from jobs.ingest.records import Record, Rejected, parse_file
from jobs.ingest.spec import get_spec
from jobs.simulator import Mess, World, simulate
from jobs.simulator.context import Day, OrderNumbers, Sold
from jobs.simulator.loyalty import TRUTH as LOYALTY_TRUTH
from jobs.simulator.members import SMS_CHATTER, SMS_OPTOUTS, crm_phone, day_end
from jobs.simulator.members import TRUTH as MEMBERS_TRUTH
from jobs.simulator.mess import MessBook, fake_ring
from jobs.simulator.stores import TRUTH as STORES_TRUTH
from jobs.simulator.stores import WRITERS as STORE_WRITERS
from jobs.simulator.truth import TruthBook, normalize
from jobs.simulator.world import BRAND_TOP_APP_KEY, ERP_APP_KEY, STORES, notice_version

END = date(2026, 11, 22)
DAYS = 3
SEED = 5
CUSTOMERS = 2500
TRUTHS = {**STORES_TRUTH, **LOYALTY_TRUTH, **MEMBERS_TRUTH}
KEYS = sorted(TRUTHS)
VOLUME = 0.2  # four times the demo's order rate: enough receipts in a small world
FIRST = END - timedelta(days=DAYS - 1)
N_SMS = 10_000  # people: a reply every few days
CRM_CHANNELS = {"member_signup", "miniprogram", "member_centre"}


def _run(out: Path, **kw) -> Path:
    args = dict(customers=CUSTOMERS, days=DAYS, seed=SEED, end=END, only=set(KEYS),
                orders_per_customer_day=VOLUME)  # fmt: skip
    simulate(out, **{**args, **kw})
    return out


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    return _run(tmp_path_factory.mktemp("clean"), bad_rate=0.0, mess=Mess.none())


@pytest.fixture(scope="module")
def dirty(tmp_path_factory) -> Path:
    return _run(tmp_path_factory.mktemp("dirty"), bad_rate=0.2, mess=Mess(junk_id_rate=0.05))


@pytest.fixture(scope="module")
def world() -> World:
    """The clean run's world (Mess.none(): no households)."""
    return World(CUSTOMERS, SEED, END, household_share=0.0)


def _files(out: Path, key: str, day: date | None = None) -> list[Path]:
    spec = get_spec(key)
    pattern = f"dt={day}/*.{spec.format}" if day else f"dt=*/*.{spec.format}"
    return sorted((out / spec.source / spec.dataset).glob(pattern))


def _parsed(out: Path, key: str, day: date | None = None) -> list[tuple[date, Record | Rejected]]:
    spec = get_spec(key)
    return [
        (date.fromisoformat(path.parent.name[3:]), item)
        for path in _files(out, key, day)
        for item in parse_file(path, spec)
    ]


def _records(out: Path, key: str, day: date | None = None) -> list[Record]:
    return [i for _d, i in _parsed(out, key, day) if isinstance(i, Record)]


def _truth(out: Path) -> dict[tuple[str, str], dict]:
    with (out / "_truth" / "records.csv").open(encoding="utf-8") as fh:
        return {(r["dataset"], r["record_id"]): r for r in csv.DictReader(fh)}


def _holders(out: Path) -> dict[tuple[str, str], list[dict]]:
    holders = defaultdict(list)
    with (out / "_truth" / "identifiers.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            holders[(row["identifier_type"], row["value"])].append(row)
    return holders


def _owned(out: Path, key: str, day: date | None = None) -> list[tuple[dict, dict]]:
    """(values, truth row) of a dataset's parsed records."""
    truth, info = _truth(out), TRUTHS[key]
    return [(r.values, truth[(key, info.record_id(r.values))]) for r in _records(out, key, day)]


def _flags(row: dict) -> set[str]:
    return set(filter(None, row["flags"].split("|")))


def _days() -> list[date]:
    return [FIRST + timedelta(days=k) for k in range(DAYS)]


# --- every dataset --------------------------------------------------------------------------------


def test_every_dataset_lands_each_day_and_parses_clean(clean):
    for key in KEYS:
        for day in _days():
            assert _files(clean, key, day), f"{key}: no file for {day}"
        items = [i for _d, i in _parsed(clean, key)]
        rejected = [i for i in items if isinstance(i, Rejected)]
        assert rejected == [], f"{key}: {rejected[:3]}"
        assert items, key
        assert not [i for i in items if i.issues], key


def test_truth_covers_every_record_once(clean):
    truth = _truth(clean)
    for key in KEYS:
        ids = [TRUTHS[key].record_id(r.values) for r in _records(clean, key)]
        assert len(ids) == len(set(ids)), key
        assert set(ids) == {rid for (k, rid) in truth if k == key}, key


@pytest.mark.parametrize("key", KEYS)
def test_spoiled_lines_are_exactly_the_rejected_ones_with_a_reason(dirty, key):
    truth = _truth(dirty)
    spoiled = {rid for (k, rid), row in truth.items() if k == key and "spoiled" in _flags(row)}
    items = [i for _d, i in _parsed(dirty, key)]
    rejected = [i for i in items if isinstance(i, Rejected)]
    assert items, key
    if key != "sms.replies":  # a dozen replies in this world: maybe none spoiled
        assert len(items) > 20, key
        assert spoiled, key
    assert len(items) == sum(1 for (k, _rid) in truth if k == key)
    assert len(rejected) == len(spoiled), key
    for item in items:  # a placeholder phone is kept as given, with an issue
        if isinstance(item, Record) and item.issues:
            row = truth[(key, TRUTHS[key].record_id(item.values))]
            assert "junk_id" in _flags(row), (key, item.issues)
    for r in rejected:
        assert r.raw
        assert r.reason.startswith("malformed") if r.field is None else r.field in r.reason
    parsed = {TRUTHS[key].record_id(i.values) for i in items if isinstance(i, Record)}
    assert not parsed & spoiled, key


@pytest.mark.parametrize("key", KEYS)
def test_identifiers_read_back_resolve_to_the_records_person(dirty, key):
    """The world's consistency rule, for these datasets: every identifier a parsed record carries
    is its person's at the record's day, except a junk id or the clerk's counter phone, and a
    stale phone (the CRM's, never updated), which the person must have held before."""
    truth, holders, info = _truth(dirty), _holders(dirty), TRUTHS[key]
    checked = Counter()
    for day, item in _parsed(dirty, key):
        if not isinstance(item, Record):
            continue
        row = truth[(key, info.record_id(item.values))]
        flags = _flags(row)
        for field, kind in info.identifiers.items():
            value = item.values.get(field)
            if value in (None, ""):
                continue
            if kind == "phone" and flags & {"junk_id", "clerk_phone"}:
                continue
            found = holders.get((kind, normalize(kind, value)), [])
            assert found, f"{key}: {field}={value!r} is nobody's {kind}"
            mine = [h for h in found if h["person_id"] == row["person_id"]]
            assert mine, f"{key}: {field}={value!r} is not {row['person_id']}'s"
            if kind == "phone" and "stale_phone" in flags:
                assert all(h["valid_to"] for h in mine), (key, value)  # theirs once, no longer
                continue
            lo, hi = datetime.combine(day, datetime.min.time()), day_end(day)
            assert any(
                (not h["valid_from"] or datetime.fromisoformat(h["valid_from"]) <= hi)
                and (not h["valid_to"] or datetime.fromisoformat(h["valid_to"]) > lo)
                for h in mine
            ), (key, field, value, day)
            checked[kind] += 1
    if key != "erp.orders":  # the ERP's ids hang off Tmall's orders (tested below)
        assert checked, key


# --- store POS ------------------------------------------------------------------------------------


def test_pos_members_give_card_and_phone_walk_ins_nothing_or_the_clerks_phone(clean, world):
    holders = _holders(clean)
    clerk = {world.clerk_phone(s): s.store_id for s in STORES}
    walk_ins, clerk_receipts = 0, defaultdict(set)
    for v, row in _owned(clean, "pos.orders"):
        person = world.by_id(row["person_id"])
        sold = datetime.fromisoformat(v["created"])
        if v["member_card"] is not None:
            assert v["member_card"] == person.member_at(sold).card
            assert v["member_mobile"] == person.phone_at(sold)
            assert "clerk_phone" not in _flags(row)
            continue
        walk_ins += 1
        if v["member_mobile"] is None:
            assert "clerk_phone" not in _flags(row)
            continue
        assert clerk[v["member_mobile"]] == v["store_code"]
        assert "clerk_phone" in _flags(row)
        clerk_receipts[v["member_mobile"]].add(row["person_id"])
        held = {h["person_id"] for h in holders[("phone", v["member_mobile"])]}
        assert held == {f"CLERK-{v['store_code']}"}
    assert walk_ins
    assert max(len(people) for people in clerk_receipts.values()) > 1, "one phone, many people"


# --- ERP ------------------------------------------------------------------------------------------


def _sold(number: int, buyer, *, paid: bool = True, flags=(), payment: str = "199.00") -> Sold:
    created = datetime.combine(END, datetime.min.time()) + timedelta(hours=9)
    return Sold(
        platform="tmall", order_id=f"{4_100_000_000_000_000_000 + number}", buyer=buyer,
        created=created,
        paid=created + timedelta(minutes=3) if paid else None, status="买家已付款，等待卖家发货",
        lines=(("P1001", "保湿精华液 30ml", 199.0, 1),), payment=payment, refund="0.00",
        receiver_phone="138****0000", flags=tuple(flags),
    )  # fmt: skip


def test_erp_copies_paid_tmall_orders_with_the_erp_apps_open_uid(tmp_path):
    world = World(800, SEED, END)
    buyers = [p for p in world if p.uses("tmall")][:6]
    ring = fake_ring(SEED, "tmall", END, 3)
    sold = [_sold(k, p) for k, p in enumerate(buyers[:4])]
    sold.append(_sold(9, buyers[4], payment="１９９.００"))
    sold.append(_sold(10, buyers[5], paid=False))  # not pulled before it is paid
    sold.append(_sold(11, buyers[0], flags=("resync",)))  # pulled once already
    sold.append(_sold(12, ring.accounts[0], flags=("fake",)))
    pulled = {o.order_id for o in sold} - {sold[5].order_id, sold[6].order_id}
    truth = TruthBook(tmp_path, world)
    ctx = Day(
        out=tmp_path, day=END, index=0, world=world, seed=SEED, rng=random.Random(1),
        bad_rate=0.0, mess=MessBook(Mess(), SEED), volume=1.0, truth=truth,
        seq=OrderNumbers(), handoff={"tmall": sold},
    )  # fmt: skip
    written = STORE_WRITERS["erp.orders"](ctx)
    truth.close()
    rows = {v["erp_order_id"]: (v, row) for v, row in _owned(tmp_path, "erp.orders")}
    assert written.records == len(rows)
    tmall = {v["online_order_id"]: (v, row) for v, row in rows.values() if v["platform"] == "tmall"}
    assert set(tmall) == pulled
    for order in sold:
        if order.order_id not in tmall:
            continue
        v, row = tmall[order.order_id]
        assert row["person_id"] == order.buyer.person_id
        assert v["buyer_account"] == order.buyer.tmall_open_uid(ERP_APP_KEY)
        assert v["buyer_account"] != order.buyer.tmall_open_uid(BRAND_TOP_APP_KEY)
        assert float(v["payment"]) == 199.0
        assert "*" in v["receiver_mobile"]
    assert "fake" in _flags(tmall[sold[7].order_id][1])
    holders = _holders(tmp_path)
    account = ring.accounts[0].tmall_open_uid(ERP_APP_KEY)
    assert [h["person_id"] for h in holders[("tmall_open_uid", account)]] == [
        ring.accounts[0].person_id
    ]
    others = [v for v, _row in rows.values() if v["platform"] != "tmall"]
    assert {v["platform"] for v in others} <= {"xiaohongshu", "kuaishou"}
    assert all(v["buyer_account"] is None and "*" in v["receiver_mobile"] for v in others)
    online = [v["online_order_id"] for v, _row in rows.values()]
    assert len(online) == len(set(online)), "the ERP exports each online order once"


def test_erp_links_the_tmall_exports_orders_by_their_platform_id(tmp_path):
    simulate(tmp_path, customers=1500, days=2, seed=SEED, end=END, bad_rate=0.05,
             only={"tmall.orders", "erp.orders"})  # fmt: skip
    direct = set(get_spec("erp.orders").silver.linked_order.ingested_directly)
    tmall = {str(r.values["order_id"]): r.values for r in _records(tmp_path, "tmall.orders")}
    holders = _holders(tmp_path)
    by_platform = defaultdict(list)
    for v, row in _owned(tmp_path, "erp.orders"):
        by_platform[v["platform"]].append(v)
        if v["platform"] != "tmall":
            continue
        assert v["online_order_id"] in tmall
        assert v["created"] == tmall[v["online_order_id"]]["created"]
        owners = {h["person_id"] for h in holders[("tmall_open_uid", v["buyer_account"])]}
        assert owners == {row["person_id"]}
    assert by_platform["tmall"]
    assert set(by_platform) - direct
    online = [v["online_order_id"] for vs in by_platform.values() for v in vs]
    assert len(online) == len(set(online)), "the ERP exports each online order once"


# --- CRM loyalty ----------------------------------------------------------------------------------


def test_points_balances_follow_each_other_across_days(clean):
    last: dict[str, int] = {}
    rows = sorted(
        (r.values for r in _records(clean, "crm.points")),
        key=lambda v: (v["occurred"], v["ledger_id"]),
    )
    assert {v["change_type"] for v in rows} >= {"EARN", "REDEEM"}
    for v in rows:
        before = last.get(v["member_card"], v["balance"] - v["points"])
        assert before >= 0, v
        assert v["balance"] == before + v["points"] >= 0, v
        last[v["member_card"]] = v["balance"]
    assert len(last) < len(rows), "some members move points on more than one day"


def test_members_join_on_their_sign_up_day_with_welcome_points(clean, world):
    joined_cards = []
    for day in _days():
        joins = [
            v for v in (r.values for r in _records(clean, "crm.tier_changes", day))
            if v["change_type"] == "JOIN"
        ]  # fmt: skip
        signed = {p.member.card for p in world.on_day(world.signup, day)}
        assert {v["member_card"] for v in joins} == signed, day
        welcome = {
            v["member_card"]
            for v in (r.values for r in _records(clean, "crm.points", day))
            if v["change_type"] == "EARN" and v["balance"] == v["points"]
        }
        assert signed <= welcome
        joined_cards += [v["member_card"] for v in joins]
    assert joined_cards
    assert len(joined_cards) == len(set(joined_cards)), "a member joins once"


def test_loyalty_rows_carry_the_card_and_the_phone_the_crm_holds(dirty):
    w = World(CUSTOMERS, SEED, END, household_share=Mess().household_rate)
    stale = 0
    for key, when in (("crm.points", "occurred"), ("crm.tier_changes", "changed_at")):
        for v, row in _owned(dirty, key):
            person = w.by_id(row["person_id"])
            at = datetime.fromisoformat(v[when])
            assert v["member_card"] == person.member.card
            assert v["mobile"] == crm_phone(person, at)
            assert ("stale_phone" in _flags(row)) == (v["mobile"] != person.phone_at(at))
            stale += v["mobile"] != person.phone_at(at)
    assert stale, "some members changed number without telling the brand"


def test_coupons_are_redeemed_or_expire_only_after_being_issued(clean):
    issued: dict[str, date] = {}
    later = []
    for day in _days():
        for v in (r.values for r in _records(clean, "crm.coupons", day)):
            if v["status"] == "ISSUED":
                issued[v["coupon_code"]] = day
            else:
                later.append((v, day))
    assert issued
    assert later
    for v, day in later:
        assert issued[v["coupon_code"]] < day


# --- the member lists -----------------------------------------------------------------------------


def test_crm_members_are_a_snapshot_then_the_days_sign_ups_and_updates(clean, world):
    first = {v["member_card"] for v in (r.values for r in _records(clean, "crm.members", FIRST))}
    assert first == {p.member.card for p in world if p.member_at(day_end(FIRST))}
    for day in _days()[1:]:
        cards = {v["member_card"] for v in (r.values for r in _records(clean, "crm.members", day))}
        assert {p.member.card for p in world.on_day(world.signup, day)} <= cards
        assert len(cards) < len(first) / 10
    kinds = Counter()
    for v, row in _owned(clean, "crm.members"):
        person = world.by_id(row["person_id"])
        m = person.member
        assert (v["member_card"], v["channel"]) == (m.card, m.channel)
        assert v["mobile"] == crm_phone(person, datetime.fromisoformat(v["updated_at"]))
        bound = m.channel == "miniprogram" and person.mp_app.bound
        assert v["unionid"] == (person.unionid if bound else None)
        ouid = person.tmall_open_uid(BRAND_TOP_APP_KEY) if m.channel == "tmall" else None
        assert v["tmall_open_uid"] == ouid
        assert v["email"] in (None, person.email)
        assert v["birthday"] in (None, person.birthday.isoformat())
        assert (v["home_store"], v["guide"]) == (m.home_store or None, m.guide or None)
        kinds.update(k for k in ("unionid", "tmall_open_uid", "email", "address") if v[k])
    assert min(kinds.values()) > 0
    assert len(kinds) == 4


def test_the_store_list_holds_the_same_people_with_noise_and_no_shared_id(clean, world):
    store = _owned(clean, "pos.members", FIRST)
    crm = _owned(clean, "crm.members", FIRST)
    in_store = {row["person_id"]: v for v, row in store}
    in_crm = {row["person_id"] for _v, row in crm}
    assert in_store.keys() & in_crm
    assert in_store.keys() - in_crm
    assert in_crm - in_store.keys()
    assert not {v["store_member_id"] for v, _r in store} & {v["member_card"] for v, _r in crm}
    expected = {p.person_id for p in world if p.in_store_list}
    registered = {
        pid for pid in expected
        if (world.by_id(pid).member and world.by_id(pid).member.channel == "store"
            and world.by_id(pid).member.signed_up <= day_end(FIRST))
    }  # fmt: skip
    assert registered <= in_store.keys() <= expected
    flags = {row["person_id"]: row["flags"].split("|") for _v, row in store}
    noise = Counter()
    for pid, v in in_store.items():
        person = world.by_id(pid)
        assert v["store_member_id"] == person.store_member_no
        noise["name"] += v["name"] != person.name
        if v["birthday"]:
            born = date.fromisoformat(v["birthday"])
            noise["birthday"] += born != person.birthday
            # Truth says which birthdays are a clerk's slip (no evidence then).
            assert ("birthday_variant" in flags[pid]) == (born != person.birthday)
            swapped = (born.month, born.day) == (person.birthday.day, person.birthday.month)
            noise["swapped"] += swapped and born != person.birthday
        noise["room"] += bool(v["address"]) and "单元" not in v["address"]
        noise["no_phone"] += v["mobile"] is None
        noise["other_column"] += v["mobile"] is None and v["contact_phone"] is not None
        noise["note"] += "手机" in (v["note"] or "")
    assert all(noise[k] > 0 for k in ("name", "birthday", "swapped", "room", "no_phone",
                                      "other_column", "note")), noise  # fmt: skip


def test_the_lists_link_only_on_evidence_where_no_id_is_shared(clean):
    truth = _truth(clean)
    store = [row for (k, _rid), row in truth.items() if k == "pos.members"]
    assert sum(row["fuzzy_linkable"] == "1" for row in store) > 0
    assert all(not (row["linkable"] == "1" and row["fuzzy_linkable"] == "1") for row in store)


# --- consent --------------------------------------------------------------------------------------


def test_the_consent_log_is_the_worlds_consent_events(clean, world):
    def written(day: date) -> set[tuple]:
        return {
            (row["person_id"], v["purpose"], v["granted"] == "granted", v["changed_at"],
             v["channel"], v["notice_version"])
            for v, row in _owned(clean, "crm.consents", day)
        }  # fmt: skip

    def expected(lo: datetime, hi: datetime) -> set[tuple]:
        return {
            (e.person_id, e.purpose, e.granted, e.at.strftime("%Y-%m-%dT%H:%M:%S"), e.channel,
             e.notice_version)
            for p in world for e in p.consent_events
            if e.channel in CRM_CHANNELS and lo <= e.at <= hi
        }  # fmt: skip

    history = written(FIRST)
    assert history == expected(world.history_start, day_end(FIRST))
    assert {c for *_x, c, _n in history} == CRM_CHANNELS
    for day in _days()[1:]:
        assert written(day) == expected(datetime.combine(day, datetime.min.time()), day_end(day))
    for v, row in _owned(clean, "crm.consents"):
        assert v["notice_version"] == notice_version(datetime.fromisoformat(v["changed_at"]))
        if v["channel"] == "miniprogram":
            person = world.by_id(row["person_id"])
            assert v["openid"] == person.openid(person.mp_app)
            assert v["unionid"] == (person.unionid if person.mp_app.bound else None)


def test_sms_replies_come_from_the_number_the_crm_holds(tmp_path):
    """Every `sms_reply` opt-out of the world is a 退订 reply on its day; the other replies come
    from members still subscribed; all from the phone the CRM holds."""
    days = 40  # an opt-out every few days in this world
    simulate(tmp_path, customers=N_SMS, days=days, seed=SEED, end=END, only={"sms.replies"})
    w = World(N_SMS, SEED, END, household_share=Mess().household_rate)
    replies = _owned(tmp_path, "sms.replies")
    optouts = Counter()
    for v, row in replies:
        person = w.by_id(row["person_id"])
        at = datetime.fromisoformat(v["received"])
        assert v["phone"] == crm_phone(person, at)
        if v["content"] in SMS_OPTOUTS:
            assert any(
                e.channel == "sms_reply" and e.at == at and not e.granted
                for e in person.consent_events
            )
            optouts[person.person_id] += 1
        else:
            assert v["content"] in SMS_CHATTER
            assert person.consent("marketing_sms", at)
    expected = [
        p.person_id for k in range(days) for p in w.on_day(w.sms_optout, END - timedelta(days=k))
    ]
    assert expected
    assert optouts == Counter(expected)
    assert len(replies) > 2 * len(expected), "most replies are no opt-out"


# --- determinism ----------------------------------------------------------------------------------


def test_deterministic_for_a_seed(clean, tmp_path):
    _run(tmp_path, bad_rate=0.0, mess=Mess.none())

    def digest(out: Path) -> dict[str, str]:
        return {
            str(f.relative_to(out)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(out.rglob("*"))
            if f.is_file()
        }

    assert digest(clean) == digest(tmp_path)
