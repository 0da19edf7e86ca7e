"""The simulated world's person model: ids drawn independently, phones over time, dated events
found by their day, households, namesakes, consent, determinism and bounded memory.

Every expectation is derived from the world itself (rebuilt from the seed) or from a scan of all
its people, never from numbers written down here.
"""

from __future__ import annotations

import itertools
import tracemalloc
from collections import defaultdict
from datetime import date, datetime, timedelta

import pytest

from jobs.simulator import Mess, World, simulate
from jobs.simulator.world import (
    AGENCY_CORP,
    BRAND_CORP,
    OA,
    RECYCLE_GAP_DAYS,
    STORES,
    identifiers,
    notice_version,
)

END = date(2026, 11, 22)
N = 6000


@pytest.fixture(scope="module")
def world() -> World:
    return World(N, 11, END)


@pytest.fixture(scope="module")
def people(world):
    return list(world)


def _windows(value: str, k: int = 8) -> set[str]:
    return {value[i : i + k] for i in range(len(value) - k + 1)}


def test_no_identifier_is_derived_from_another(people):
    """No two identifiers of one person (of different types or apps) share an 8-character run,
    and none contains the truth id's number."""
    for person in people[:1500]:
        spans = identifiers(person)
        values = [(t, v) for t, v, _a, _b in spans if t != "phone"]
        number = person.person_id.lstrip("P")
        for (ta, a), (tb, b) in itertools.combinations(values, 2):
            if a == b:
                assert ta == "device_id" == tb, (person, ta, tb, a)  # a household tablet
                continue
            assert not _windows(a) & _windows(b), (person, ta, a, tb, b)
        for t, v in values:
            assert number not in v or len(number) < 5 or t == "email", (person, t, v)


def test_openids_differ_per_app_and_external_userids_per_corp(people):
    from jobs.simulator.world import MEMBER_MP, SHOP_MP

    for person in people[:500]:
        ids = {person.openid(SHOP_MP), person.openid(MEMBER_MP), person.openid(OA)}
        assert len(ids) == 3
        assert person.unionid not in ids
    contacts = [p for p in people if p.agency_contact is not None]
    assert contacts
    for person in contacts[:200]:
        assert person.wecom.corp == BRAND_CORP
        assert person.agency_contact.corp == AGENCY_CORP
        assert person.wecom.external_userid != person.agency_contact.external_userid


def test_dated_events_are_found_by_their_day(world, people):
    """`World.on_day` gives exactly the people whose event (when it applies) falls on the day."""
    days = [END - timedelta(days=k) for k in range(0, 400, 7)]
    for trait in (world.signup, world.wecom_add, world.wecom_delete, world.oa_unfollow,
                  world.sms_optout, world.phone_change):  # fmt: skip
        by_day = defaultdict(set)
        for p in people:
            at = p.event_time(trait)
            if at is not None:
                by_day[at.date()].add(p.index)
        assert sum(len(v) for v in by_day.values()) > 0, trait.salt
        for day in days:
            assert {p.index for p in world.on_day(trait, day)} == by_day.get(day, set()), (
                trait.salt,
                day,
            )


def test_each_number_has_one_holder_at_a_time_except_a_household(people):
    holders = defaultdict(list)
    for p in people:
        for t, value, start, end in identifiers(p):
            if t == "phone":
                holders[value].append((p, start, end))
    for value, spans in holders.items():
        for (a, a0, a1), (b, b0, b1) in itertools.combinations(spans, 2):
            overlap = (a1 is None or b0 is None or b0 < a1) and (
                b1 is None or a0 is None or a0 < b1
            )
            if overlap:
                assert a.household_id, (value, a, b)
                assert a.household_id == b.household_id, (value, a, b)


def test_recycled_numbers_go_to_a_new_person_after_a_gap(people):
    recycled = [p for p in people if p.recycled_to is not None]
    assert len(recycled) > 20
    for old in recycled:
        new = old.__class__(old.world, old.recycled_to)
        old_span = old.phones[0]
        new_span = next(s for s in new.phones if s.phone == old_span.phone)
        gap = (new_span.valid_from - old_span.valid_to).days
        assert RECYCLE_GAP_DAYS[0] <= gap <= RECYCLE_GAP_DAYS[1], (old, new, gap)
        assert old.phone_at(new_span.valid_from) != old_span.phone
        assert new.phone_at(new_span.valid_from + timedelta(days=1)) == old_span.phone


def test_members_keep_a_stale_phone_only_when_they_changed_it(people):
    stale = [p for p in people if p.member and p.member.crm_phone != p.phone_at(p.world.until)]
    assert stale
    for p in stale:
        assert p.phone_changed
        assert p.member.crm_phone == p.phone_at(p.member.signed_up)


def test_households_share_an_address_and_namesakes_share_name_and_birthday(people):
    homes = [p for p in people if p.household_id and p.index % 2 == 0]
    assert homes
    for p in homes:
        partner = p.household_partner
        assert partner.household_id == p.household_id
        assert partner.address == p.address
        if p.shares_household_phone:
            assert partner.phone_at(END) == p.phone_at(END)
    namesakes = [p for p in people if p.namesake_of is not None]
    assert namesakes
    for p in namesakes:
        other = p.world.person(p.namesake_of)
        assert p.birthday == other.birthday or other.namesake_of is not None
        assert p.name == other.name or other.namesake_of is not None
        assert p.person_id != other.person_id
        assert p.address != other.address or p.household_id


def test_live_code_state_only_reaches_people_through_its_channel(people):
    stores = {f"store_poster_{s.store_id}" for s in STORES}
    contacts = [p.wecom for p in people if p.wecom is not None]
    assert {c.state for c in contacts} >= {"pkg_card_tmall", ""}
    for p in people:
        c = p.wecom
        if c is None or not c.state:
            continue
        assert c.add_way == 1
        if c.state == "pkg_card_tmall":
            assert p.uses("tmall")
        elif c.state == "pkg_card_jd":
            assert p.uses("jd")
        elif c.state in stores:
            assert p.uses("store")
        elif c.state == "oa_menu_vip":
            assert p.oa_followed is not None
            assert p.oa_followed < c.added


def test_consent_follows_the_events_with_the_notice_in_force(people):
    seen = set()
    for p in people:
        for e in p.consent_events:
            seen.add((e.purpose, e.granted, e.channel))
            assert e.notice_version == notice_version(e.at)
        c = p.wecom
        centre = [e.at for e in p.consent_events if e.channel == "member_centre"]
        if c is not None and c.deleted is not None:
            if not centre or min(centre) > c.deleted:  # no opt-out of everything before
                assert p.consent("marketing_wecom", c.deleted - timedelta(seconds=1))
            assert not p.consent("marketing_wecom", c.deleted)
    assert ("marketing_sms", False, "sms_reply") in seen
    assert ("marketing_oa", False, "oa_unfollow") in seen
    assert ("marketing_sms", True, "member_signup") in seen


def test_same_seed_same_people_other_seed_other_people():
    a, b, c = World(300, 5, END), World(300, 5, END), World(300, 6, END)
    fingerprint = lambda w: [(p.name, p.phones, p.member, p.wecom) for p in w]  # noqa: E731
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint(c)


def test_the_whole_world_is_byte_identical_for_a_seed(tmp_path):
    def digest(out):
        import hashlib

        h = hashlib.sha256()
        for f in sorted(out.rglob("*")):
            if f.is_file():
                h.update(str(f.relative_to(out)).encode())
                h.update(f.read_bytes())
        return h.hexdigest()

    simulate(tmp_path / "a", customers=150, days=2, seed=3, end=END)
    simulate(tmp_path / "b", customers=150, days=2, seed=3, end=END)
    simulate(tmp_path / "c", customers=150, days=2, seed=4, end=END)
    assert digest(tmp_path / "a") == digest(tmp_path / "b") != digest(tmp_path / "c")


def test_mess_from_yaml(tmp_path):
    from jobs.common.errors import CdpError

    good = tmp_path / "m.yaml"
    good.write_text("gift_rate: 0.2\nlate_rate: 0\n")
    rates = Mess.from_yaml(good)
    assert rates.gift_rate == 0.2
    assert rates.late_rate == 0
    assert rates.junk_id_rate == Mess().junk_id_rate
    bad = tmp_path / "bad.yaml"
    bad.write_text("gifts: 0.2\n")
    with pytest.raises(CdpError, match="gifts"):
        Mess.from_yaml(bad)


def test_memory_does_not_grow_with_people(tmp_path):
    """Peak memory of a small and a 20x larger world stays within a small factor: the world is
    never held, only a day's records."""
    simulate(tmp_path / "warm", customers=50, days=1, end=END)  # imports and caches first

    def peak(n: int, name: str) -> int:
        tracemalloc.start()
        simulate(tmp_path / name, customers=n, days=1, end=END, orders_per_customer_day=0.001)
        _cur, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    small, large = peak(1000, "small"), peak(20_000, "large")
    assert large < 4 * small + 8_000_000, (small, large)


def test_the_clock_starts_before_every_event(world, people):
    for p in people[:1000]:
        for e in p.consent_events:
            assert world.history_start <= e.at < world.until
        if p.member:
            assert isinstance(p.member.signed_up, datetime)
