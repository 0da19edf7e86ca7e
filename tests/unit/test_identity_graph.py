"""The guarded identity graph and stable one_ids (jobs/identity/graph.py, ids.py) on small
hand-made records, on DuckDB: which ids become one profile, which values are refused and why,
and which one_id a profile keeps across runs. The Spark engine gives the same answer (last tests).
"""

from datetime import date, datetime

import pyarrow as pa
import pytest

from jobs.common.errors import CdpError
from jobs.identity import graph
from jobs.identity.engine import DuckEngine, SparkEngine
from jobs.identity.registry import load_registry, token
from jobs.identity.run import Controls, resolve_occurrences

REGISTRY = load_registry()
KEY = b"unit-test-key"
T = datetime(2026, 11, 27, 10, 0)
OCC_COLUMNS = ("rule", "record_key", "seen_at", "identifier_type", "namespace", "identifier")


def _occ_rows(records: dict[str, list[tuple[str, str]]]) -> list[tuple]:
    """records: record key -> [(identifier_type, identifier)], all of rule `r`."""
    return [("r", rec, T, kind, None, value) for rec, ids in records.items() for kind, value in ids]


def _resolve(records, previous=None, day=date(2026, 11, 27), engine=None, operator=None):
    engine = engine or DuckEngine()
    rows = _occ_rows(records)
    occ = pa.table(
        {
            c: pa.array([r[i] for r in rows], pa.timestamp("us") if c == "seen_at" else pa.string())
            for i, c in enumerate(OCC_COLUMNS)
        }
    )
    if isinstance(engine, SparkEngine):
        engine.register("occ", engine.spark.createDataFrame(occ.to_pandas()))
        if previous is not None:
            previous = engine.spark.createDataFrame(previous.to_pandas())
    else:
        engine.register("occ", occ)
    resolve_occurrences(
        engine, REGISTRY, KEY, day, previous=previous, operator=operator or Controls()
    )
    return engine


def _table(engine, name: str) -> pa.Table:
    if isinstance(engine, SparkEngine):
        return engine.frame(name).toArrow()
    return engine.arrow(name)


def _profiles(engine) -> dict[tuple[str, str], str]:
    rows = _table(engine, "identity_map").to_pylist()
    return {(r["identifier_type"], r["identifier"]): r["one_id"] for r in rows}


def _refused(engine) -> dict[tuple[str, str], str]:
    rows = _table(engine, "refused").to_pylist()
    return {(r["identifier_type"], r["identifier"]): r["reason"] for r in rows}


def _changes(engine) -> list[tuple]:
    rows = _table(engine, "identity_updates").to_pylist()
    return sorted((r["change"], r["old_one_id"], r["new_one_id"]) for r in rows)


def test_a_chain_of_ids_is_one_profile():
    engine = _resolve(
        {
            "youzan-order": [("youzan_open_id", "y1"), ("phone", "p1")],
            "crm-member": [("member_card", "c1"), ("phone", "p1"), ("wechat_unionid", "u1")],
            "mp-event": [("wechat_unionid", "u1"), ("wechat_openid", "o1")],
            "someone-else": [("member_card", "c2")],
        },
    )
    one = _profiles(engine)
    assert len({one[k] for k in one if k != ("member_card", "c2")}) == 1
    assert one[("member_card", "c2")] != one[("member_card", "c1")]


def test_a_household_phone_joins_neither_member_to_the_other():
    engine = _resolve(
        {
            "crm-a": [("member_card", "c1"), ("phone", "shared")],
            "crm-b": [("member_card", "c2"), ("phone", "shared")],
            "sms": [("phone", "shared")],
        },
    )
    one = _profiles(engine)
    assert one[("member_card", "c1")] != one[("member_card", "c2")]
    assert ("phone", "shared") not in one  # no merge key, in no profile
    assert "2 member_card (limit 1)" in _refused(engine)[("phone", "shared")]


def test_a_device_seen_with_more_profiles_than_its_cap_is_shared():
    records = {f"login-{i}": [("member_card", f"c{i}"), ("device_id", "kiosk")] for i in range(4)}
    records["anonymous"] = [("device_id", "kiosk"), ("anonymous_id", "a1")]
    engine = _resolve(records)
    refused = _refused(engine)
    assert refused[("device_id", "kiosk")].startswith("shared: seen with 4 profiles")
    one = _profiles(engine)
    assert len({one[("member_card", f"c{i}")] for i in range(4)}) == 4
    # the anonymous record keeps its cookie as a profile of its own, joined to no member
    assert one[("anonymous_id", "a1")] not in {one[("member_card", f"c{i}")] for i in range(4)}


def test_two_values_that_join_members_together_are_both_refused():
    """Each phone alone reaches one member; one record carrying both joins the two members."""
    engine = _resolve(
        {
            "a": [("member_card", "c1"), ("phone", "p1")],
            "b": [("member_card", "c2"), ("phone", "p2")],
            "both": [("phone", "p1"), ("phone", "p2")],
        },
    )
    refused = _refused(engine)
    assert set(refused) == {("phone", "p1"), ("phone", "p2")}
    one = _profiles(engine)
    assert one[("member_card", "c1")] != one[("member_card", "c2")]


def test_a_profile_keeps_the_values_of_a_type_with_the_most_records():
    """A member card seen with two unionids (a limit of one): the one on more records stays."""
    engine = _resolve(
        {
            "crm": [("member_card", "c1"), ("wechat_unionid", "u-main")],
            "event-1": [("member_card", "c1"), ("wechat_unionid", "u-main")],
            "event-2": [("member_card", "c1"), ("wechat_unionid", "u-main"), ("device_id", "d")],
            "odd": [("member_card", "c1"), ("wechat_unionid", "u-odd")],
        },
    )
    assert set(_refused(engine)) == {("wechat_unionid", "u-odd")}
    one = _profiles(engine)
    assert one[("wechat_unionid", "u-main")] == one[("member_card", "c1")]


def test_registry_blocked_values_are_never_ids():
    junk_phone = token(KEY, "phone", "+8613800138000")
    engine = _resolve(
        {
            "a": [("member_card", "c1"), ("phone", junk_phone)],
            "b": [("member_card", "c2"), ("phone", junk_phone), ("device_id", "00000000")],
        }
    )
    blocked = {(r["identifier_type"], r["identifier"]) for r in engine.arrow("blocked").to_pylist()}
    assert blocked == {("phone", junk_phone), ("device_id", "00000000")}
    assert ("phone", junk_phone) not in _profiles(engine)


def _previous(engine, since: dict[str, date] | None = None) -> pa.Table:
    """The run's identity_map as the next run reads it, some one_id_since moved back."""
    rows = _table(engine, "identity_map").to_pylist()
    for r in rows:
        r["one_id_since"] = (since or {}).get(r["identifier"], r["one_id_since"])
    return pa.Table.from_pylist(rows)


def test_one_ids_are_stable_the_older_survives_a_merge_and_a_split_is_recorded():
    day1, day2, day3 = date(2026, 11, 27), date(2026, 11, 28), date(2026, 11, 29)
    first = {
        "a": [("member_card", "c1"), ("phone", "p1")],
        "b": [("youzan_open_id", "y1"), ("phone", "p2")],
    }
    run1 = _resolve(first, day=day1)
    one1 = _profiles(run1)
    assert len(set(one1.values())) == 2
    # a rerun names every profile the same (deterministic, from the anchor)
    assert _profiles(_resolve(first, day=day1)) == one1
    # and so does a run that finds its own map: nothing changed, nothing recorded
    again = _resolve(first, previous=_previous(run1), day=day2)
    assert _profiles(again) == one1
    assert _changes(again) == []

    # day 2: a record joins the two profiles; the one_id of the older one survives
    second = {**first, "bridge": [("phone", "p1"), ("phone", "p2")]}
    older = _previous(run1, {"y1": date(2026, 1, 1), "p2": date(2026, 1, 1)})
    run2 = _resolve(second, previous=older, day=day2)
    survivor, merged = one1[("youzan_open_id", "y1")], one1[("member_card", "c1")]
    assert set(_profiles(run2).values()) == {survivor}
    assert _changes(run2) == [("merge", merged, survivor)]
    why = _table(run2, "identity_updates").to_pylist()[0]
    assert (why["rule"], why["reason"]) == ("r", "joined by record bridge")

    # day 3: the bridge is gone; the larger part keeps the id, the other gets a new one
    third = {**first, "a": [*first["a"], ("email", "e1")]}
    run3 = _resolve(third, previous=_previous(run2), day=day3)
    one3 = _profiles(run3)
    assert one3[("member_card", "c1")] == survivor  # 3 ids against 2
    assert one3[("youzan_open_id", "y1")] not in (survivor, merged)
    assert _changes(run3) == [("split", survivor, one3[("youzan_open_id", "y1")])]


def test_a_value_gone_retires_its_one_id():
    run1 = _resolve({"a": [("member_card", "c1")], "b": [("member_card", "c2")]})
    gone = _profiles(run1)[("member_card", "c2")]
    run2 = _resolve({"a": [("member_card", "c1")]}, previous=_previous(run1))
    assert _changes(run2) == [("retire", gone, None)]


def test_rules_extract_typed_namespaced_ids():
    engine = DuckEngine()
    engine.register(
        "t_orders",
        pa.Table.from_pylist(
            [
                {"source": "miniprogram", "order_id": "o1", "order_ts": T,
                 "buyer_id_type": "openid", "buyer_id": "wxapp:oABC", "phone_token": "tok1",
                 "device_id": None, "is_test": False, "is_fake": False},
                {"source": "pos", "order_id": "o2", "order_ts": T, "buyer_id_type": "card",
                 "buyer_id": " 8001 ", "phone_token": "", "device_id": None, "is_test": False,
                 "is_fake": None},
                {"source": "pos", "order_id": "o3", "order_ts": T, "buyer_id_type": "card",
                 "buyer_id": "8002", "phone_token": None, "device_id": None, "is_test": True,
                 "is_fake": False},  # a test order names no one
            ]
        ),
    )  # fmt: skip
    engine.register(
        "t_store_members",
        pa.Table.from_pylist(
            [{"store_code": "S1", "store_member_id": "VIP1", "phone_token": "tok2",
              "name_token": "n1", "name_is_title": False, "updated_at": T},
             {"store_code": "S1", "store_member_id": "VIP2", "phone_token": None,
              "name_token": "n-title", "name_is_title": True, "updated_at": T}]
        ),
    )  # fmt: skip
    assert graph.extract(engine, REGISTRY, {"orders", "store_members"})
    got = {
        (r["rule"], r["record_key"], r["identifier_type"], r["namespace"], r["identifier"])
        for r in engine.arrow("occ").to_pylist()
    }
    assert got == {
        ("order_buyer", "miniprogram|o1", "wechat_openid", "wxapp", "oABC"),
        ("order_buyer", "miniprogram|o1", "phone", None, "tok1"),
        ("order_buyer", "pos|o2", "member_card", None, "8001"),
        ("store_member", "S1|VIP1", "store_member_no", "S1", "S1:VIP1"),
        ("store_member", "S1|VIP1", "phone", None, "tok2"),
        ("store_member", "S1|VIP1", "name", None, "n1"),  # 张女士 (a title) is no name
        ("store_member", "S1|VIP2", "store_member_no", "S1", "S1:VIP2"),
    }


def test_a_rule_naming_a_missing_column_fails_naming_it():
    engine = DuckEngine()
    engine.register(
        "t_store_members", pa.Table.from_pylist([{"store_code": "S1", "store_member_id": "V"}])
    )
    with pytest.raises(CdpError, match=r"store_member: silver.store_members has no column"):
        graph.extract(engine, REGISTRY, {"store_members"})


# --- the Spark engine: the same SQL, the same answer ------------------------------------------

MIXED = {
    **{f"r{i}": [("member_card", f"c{i % 7}"), ("phone", f"p{i % 11}"), ("device_id", f"d{i}")]
       for i in range(30)},
    "kiosk-1": [("member_card", "k1"), ("device_id", "kiosk")],
    "kiosk-2": [("member_card", "k2"), ("device_id", "kiosk")],
    "kiosk-3": [("member_card", "k3"), ("device_id", "kiosk")],
    "kiosk-4": [("member_card", "k4"), ("device_id", "kiosk")],
    "home": [("member_card", "h1"), ("phone", "family")],
    "home-2": [("member_card", "h2"), ("phone", "family")],
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("max_in_memory_edges", [10_000, 0], ids=["scipy", "distributed"])
def test_spark_gives_the_duckdb_answer(spark, max_in_memory_edges):
    duck = _resolve(MIXED)
    on_spark = _resolve(MIXED, engine=SparkEngine(spark, max_in_memory_edges))
    assert _profiles(on_spark) == _profiles(duck)
    assert _refused(on_spark) == _refused(duck)


def test_a_phone_between_members_of_different_names_merges_neither():
    """A CRM member and a store member (no shared id) on one phone: the same person when the
    names agree, a household when they do not."""
    same = _resolve(
        {
            "crm": [("member_card", "c1"), ("phone", "p1"), ("name", "n-li")],
            "store": [("store_member_no", "S1:V1"), ("phone", "p1"), ("name", "n-li")],
        }
    )
    one = _profiles(same)
    assert one[("member_card", "c1")] == one[("store_member_no", "S1:V1")]
    assert ("name", "n-li") not in one  # evidence, never an id
    household = _resolve(
        {
            "crm": [("member_card", "c1"), ("phone", "p1"), ("name", "n-li")],
            "store": [("store_member_no", "S1:V1"), ("phone", "p1"), ("name", "n-wang")],
        }
    )
    one = _profiles(household)
    assert one[("member_card", "c1")] != one[("store_member_no", "S1:V1")]
    assert _refused(household)[("phone", "p1")] == "would merge profiles of different names"


def test_a_never_merge_pair_splits_and_each_keeps_its_other_records():
    records = {
        "crm": [("member_card", "c1"), ("phone", "p1"), ("youzan_open_id", "y1")],
        "youzan": [("youzan_open_id", "y1"), ("email", "e1")],
        "sms": [("phone", "p1")],
    }
    one = _profiles(_resolve(records))
    assert len(set(one.values())) == 1
    apart = Controls(apart=(("member_card", "c1", "youzan_open_id", "y1"),))
    engine = _resolve(records, operator=apart)
    one = _profiles(engine)
    assert one[("member_card", "c1")] == one[("phone", "p1")]
    assert one[("youzan_open_id", "y1")] == one[("email", "e1")] != one[("member_card", "c1")]
    assert "(never merge)" in _refused(engine)[("youzan_open_id", "y1")]


def test_a_manual_merge_joins_two_profiles():
    records = {
        "a": [("member_card", "c1")],
        "b": [("youzan_open_id", "y1")],
        "c": [("member_card", "c2")],
    }
    merged = Controls(merges=(("member_card", "c1", "youzan_open_id", "y1"),))
    one = _profiles(_resolve(records, operator=merged))
    assert one[("member_card", "c1")] == one[("youzan_open_id", "y1")]
    assert one[("member_card", "c2")] != one[("member_card", "c1")]


def test_customers_and_kept_records_are_keyed_on_one_id():
    engine = _resolve(
        {
            "crm": [("member_card", "c1"), ("phone", "p-old")],
            "order": [("member_card", "c1"), ("phone", "p-new")],
        }
    )
    one = _profiles(engine)[("member_card", "c1")]
    customers = engine.arrow("customers").to_pylist()
    assert [(c["one_id"], c["identifiers"], c["member_card"]) for c in customers] == [
        (one, 3, "c1")
    ]
    assert customers[0]["identifier_types"] == "member_card,phone"
