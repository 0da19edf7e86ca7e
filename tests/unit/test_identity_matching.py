"""Probabilistic matching (jobs/identity/matching.py): a store's member list with no card and
often no phone links to the CRM by name, birthday and address, through Splink trained on the
lists themselves, without joining look-alikes; its clusters then join profiles in the graph."""

import random
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest

from jobs.common import lake as lakeio
from jobs.common.errors import CdpError
from jobs.identity import matching
from jobs.identity.engine import DuckEngine, SparkEngine
from jobs.identity.registry import load_registry, token
from jobs.identity.run import resolve, rule_tables

KEY = b"test-only-key"
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玲红梅琳鹏飞宇晨欣怡"
HOMOPHONE = {"伟": "玮", "芳": "方", "静": "晶", "丽": "莉", "强": "蔷", "敏": "民", "娜": "纳"}
STREETS = ("中山路", "人民南路", "建国路", "解放路", "科技园路", "文三路")
DISTRICTS = (
    ("310115", "上海市浦东新区"),
    ("110105", "北京市朝阳区"),
    ("440305", "广东省深圳市南山区"),
)
T = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)  # silver's times are UTC instants


def _person(rng: random.Random, i: int) -> dict:
    name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
    code, city = rng.choice(DISTRICTS)
    return {
        "person": i,
        "name": name,
        "birthday": date(1960, 1, 1) + timedelta(days=rng.randrange(16000)),
        "address": f"{city}{rng.choice(STREETS)}{rng.randrange(1, 999)}号{rng.randrange(1, 30)}"
        f"-{rng.randrange(1, 4)}-{rng.randrange(1, 30)}0{rng.randrange(1, 5)}",
        "district": code,
        "phone": f"+86139{rng.randrange(10**8):08d}",
        "gender": rng.choice("FM"),
    }


def _typo(rng: random.Random, name: str) -> str:
    spots = [i for i, ch in enumerate(name) if ch in HOMOPHONE]
    if spots:
        i = rng.choice(spots)
        return name[:i] + HOMOPHONE[name[i]] + name[i + 1 :]
    return name[0] + name[:0:-1] if len(name) == 3 else name + name[-1]


def _store_row(rng: random.Random, p: dict, n: int) -> dict:
    """A clerk's row of a CRM member: no phone, and one more slip (a typo, day and month
    swapped, or no address)."""
    born, slip = p["birthday"], n % 3
    row = {"name": p["name"], "birthday": born, "address": p["address"], "phone": None}
    if slip == 0:
        row["name"] = _typo(rng, p["name"])
    elif slip == 1 and born.day <= 12 and born.day != born.month:
        row["birthday"] = born.replace(month=born.day, day=born.month)
    else:
        row["address"] = None
    return {**p, **row}


@pytest.fixture(scope="module")
def lists():
    """(crm people, store rows): 500 CRM members; 80 of them in the store list without a phone
    and with a slip each, 80 more as the CRM has them, 60 store-only people, 20 store-only
    look-alikes of CRM members (same name, another birthday and address) and 20 housemates
    (another name, no birthday, the member's address and phone)."""
    rng = random.Random(7)
    crm = [_person(rng, i) for i in range(500)]
    store = [_store_row(rng, p, n) for n, p in enumerate(crm[:80])]
    store += crm[200:280]
    store += [_person(rng, 1000 + i) for i in range(60)]
    for i, p in enumerate(crm[100:120]):
        other = _person(rng, 2000 + i)
        store.append({**other, "name": p["name"], "gender": p["gender"]})
    for i, p in enumerate(crm[300:320]):  # a housemate: the member's address and phone
        other = _person(rng, 3000 + i)
        shared = {k: p[k] for k in ("address", "district", "phone")}
        store.append({**other, **shared, "birthday": None})
    return crm, store


def _tok(kind: str, value):
    return None if value is None else token(KEY, kind, value)


def _write(settings, crm: list[dict], store: list[dict]) -> dict[str, str]:
    """The two lists as silver has them (a person's `day`, if given, is the `_logical_date`
    silver last wrote their row) and their values in the vault."""
    members = pa.Table.from_pylist(
        [
            {
                "member_card": f"C{p['person']:05d}",
                "unionid": None,
                "tmall_open_uid": None,
                "name_token": _tok("name", p["name"]),
                "birthday": p["birthday"],
                "address_token": _tok("address", p["address"]),
                "district_code": p["district"],
                "phone_token": _tok("phone", p["phone"]),
                "phone_partial": None,
                "email_token": None,
                "gender": p["gender"],
                "home_store": None,
                "registered_at": None,
                "crm_updated_at": T,
                "_logical_date": p.get("day", T.date()),
            }
            for p in crm
        ]
    )
    stores = pa.Table.from_pylist(
        [
            {
                "store_code": "SH001",
                "store_member_id": f"VIP{p['person']:05d}",
                "name_token": _tok("name", p["name"]),
                "name_is_title": False,
                "birthday": p["birthday"],
                "address_token": _tok("address", p["address"]),
                "district_code": p["district"] if p["address"] else None,
                "phone_token": _tok("phone", p["phone"]),
                "phone_partial": None,
                "gender": p["gender"],
                "registered_on": None,
                "updated_at": T,
                "_logical_date": p.get("day", T.date()),
            }
            for p in store
        ]
    )
    vault = {
        (kind, _tok(kind, p[field]), p[field])
        for p in crm + store
        for kind, field in (("name", "name"), ("address", "address"), ("phone", "phone"))
        if p[field] is not None
    }
    lakeio.overwrite_arrow(members, lakeio.table_path("silver", "members", settings))
    lakeio.overwrite_arrow(stores, lakeio.table_path("silver", "store_members", settings))
    lakeio.overwrite_arrow(
        pa.Table.from_pylist(
            [dict(zip(("kind", "token", "value"), v, strict=True)) for v in vault]
        ),
        lakeio.table_path("vault", "pii", settings),
    )
    return rule_tables(load_registry(), settings)


def _person_of(unique_id: str) -> int:
    """`crm_member|C00012` / `store_member|SH001|VIP00012` -> 12."""
    return int(unique_id.rsplit("|", 1)[1].lstrip("CVIP"))


def test_store_rows_without_a_phone_link_to_their_crm_member_and_look_alikes_do_not(lake, lists):
    crm, store = lists
    registry = load_registry()
    occ, pairs, *_ = matching.match(registry, lake, _write(lake, crm, store))
    found = pairs.to_pylist()
    wrong = [p for p in found if _person_of(p["record_l"]) != _person_of(p["record_r"])]
    assert wrong == []
    linked = {_person_of(p["record_l"]) for p in found if p["record_l"].startswith("crm_member|")}
    # Every slipped row agrees on at least two of name, birthday and address with its member.
    assert len(linked & set(range(80))) >= 76
    assert all(p["match_probability"] >= registry.matching[0].threshold for p in found)
    # Each pair says how every field compared: a homophone sounds the same, a swapped or
    # doubled character is one character off.
    levels = {
        _person_of(p["record_l"]): dict(part.split(": ") for part in p["levels"].split("; "))
        for p in found
    }
    fields = {"name", "birthday", "address", "phone", "gender", "store", "registered"}
    assert all(set(v) == fields for v in levels.values())
    typos = [i for i in range(0, 80, 3) if i in levels and store[i]["name"] != crm[i]["name"]]
    assert typos
    for i in typos:
        pairs_of_chars = zip(crm[i]["name"], store[i]["name"], strict=False)  # 王伟 / 王伟伟
        homophone = any(HOMOPHONE.get(a) == b for a, b in pairs_of_chars)
        assert levels[i]["name"] == ("same sound" if homophone else "one character off"), i
    # Each cluster is one value of the rule's type on each of its records.
    rows = occ.to_pylist()
    assert {r["identifier_type"] for r in rows} == {"member_match"}
    assert {r["namespace"] for r in rows} == {"member_lists"}
    by_cluster: dict[str, set[int]] = {}
    for r in rows:
        by_cluster.setdefault(r["identifier"], set()).add(int(r["record_key"][-5:]))
    assert all(len(people) == 1 for people in by_cluster.values())


def _resolved(engine, registry, paths, matched) -> dict[tuple[str, str], str]:
    """(rule, record_key) -> one_id after resolving the lists with the matches on `engine`."""
    spark = isinstance(engine, SparkEngine)
    for table, path in paths.items():
        data = lakeio.read_arrow(path)
        engine.register(f"t_{table}", engine.spark.createDataFrame(data) if spark else data)
    assert resolve(
        engine, registry, set(paths), KEY, date(2026, 11, 27), previous=None, matched=matched
    )
    rows = (engine.frame if spark else engine.arrow)("identity_records")
    rows = (rows.toArrow() if spark else rows).to_pylist()
    return {(r["rule"], r["record_key"]): r["one_id"] for r in rows}


def test_a_matched_store_row_gets_its_crm_members_one_id(lake, lists):
    crm, store = lists
    registry = load_registry()
    paths = _write(lake, crm[:300], store[:160])
    matched = matching.match(registry, lake, paths)
    one_id = _resolved(DuckEngine(), registry, paths, matched)
    joined = [
        i
        for i in range(80)
        if one_id[("store_member", f"SH001|VIP{i:05d}")] == one_id[("crm_member", f"C{i:05d}")]
    ]
    assert len(joined) >= 76
    assert len(set(one_id.values())) == 300 + 80 - len(joined)  # the other 80 by phone


@pytest.mark.slow
def test_spark_resolves_the_matches_as_duckdb_does(lake, lists, spark):
    crm, store = lists
    registry = load_registry()
    paths = _write(lake, crm[:300], store[:160])
    matched = matching.match(registry, lake, paths)
    duck = _resolved(DuckEngine(), registry, paths, matched)
    on_spark = _resolved(SparkEngine(spark, 0), registry, paths, matched)
    assert on_spark == duck
    assert len(set(duck.values())) < len(duck)  # matches joined records


def test_lists_with_no_sure_pair_match_nothing_and_say_so(lake, lists, caplog):
    crm, store = lists
    assert matching.match(load_registry(), lake, _write(lake, crm[:100], store[:80])) is None
    assert "no pair of its 180 records meets a deterministic rule" in caplog.text


def test_a_matching_naming_an_unknown_field_fails_naming_it(tmp_path):
    path = tmp_path / "registry.yaml"
    path.write_text(
        "types:\n  card: {trust: high, max_per_profile: 1}\n"
        "  m: {trust: medium, max_per_profile: 1}\n"
        "rules:\n  - {name: r1, table: t, record: [id], seen: ts,"
        " ids: [{column: id, type: card}]}\n"
        "matching:\n  - {name: lists, type: m, rules: [r1], fields: {name: {column: n}},"
        " compare: {name: {kind: name}}, blocking: [[name], [birth]],"
        " deterministic: [[name]], deterministic_recall: 0.5, train_on: [[name]],"
        " threshold: 0.99}\n",
        encoding="utf-8",
    )
    with pytest.raises(CdpError, match=r"matching lists: blocking on unknown field\(s\) birth"):
        load_registry(path)


def test_a_housemate_with_the_members_address_and_phone_never_matches(lake):
    """Where a list often names members otherwise (an English name at the counter), a name
    that differs weighs little; the name still vetoes, so a housemate sharing the member's
    address and phone is not the member."""
    rng = random.Random(11)
    crm = [_person(rng, i) for i in range(400)]
    store = []
    for i, p in enumerate(crm[:200]):
        nickname = i % 2 == 0
        store.append({**p, "name": f"Lily{i}" if nickname else p["name"], "birthday": None})
    for i, p in enumerate(crm[200:240]):
        shared = {k: p[k] for k in ("address", "district", "phone")}
        store.append({**_person(rng, 3000 + i), **shared, "birthday": None})
    registry = load_registry()
    paths = _write(lake, crm, store)
    _, pairs, *_ = matching.match(registry, lake, paths)
    found = pairs.to_pylist()
    assert all(_person_of(p["record_l"]) == _person_of(p["record_r"]) for p in found)
    assert {_person_of(p["record_l"]) for p in found} >= set(range(1, 200, 2))
    # Without the veto the same lists join housemates.
    name = registry.matching[0].compare["name"].model_copy(update={"vetoes": False})
    lenient = registry.matching[0].model_copy(
        update={"compare": {**registry.matching[0].compare, "name": name}}
    )
    _, pairs, *_ = matching.match(registry.model_copy(update={"matching": (lenient,)}), lake, paths)
    assert any(_person_of(p["record_l"]) >= 200 for p in pairs.to_pylist())
