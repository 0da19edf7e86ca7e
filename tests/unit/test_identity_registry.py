"""The identifier registry (jobs/identity/registry.yaml) loads, and a bad one fails naming what
is wrong; its junk phones are blocked as the very tokens silver computes."""

import pytest
from pyspark.sql import functions as F

from jobs.common.errors import CdpError
from jobs.identity.registry import load_registry, token
from jobs.silver.vault import token as spark_token


def test_the_packaged_registry_loads_in_priority_order():
    registry = load_registry()
    assert list(registry.priority)[:2] == ["member_card", "wechat_unionid"]
    assert registry.types["phone"].token == "phone"
    assert {r.table for r in registry.rules} >= {"members", "orders", "events", "store_members"}


def test_a_rule_naming_an_unknown_type_fails_naming_the_rule(tmp_path):
    path = tmp_path / "registry.yaml"
    path.write_text(
        "types:\n  phone: {trust: medium, max_per_profile: 3}\n"
        "rules:\n  - {name: r1, table: t, record: [id], seen: ts,"
        " ids: [{column: x, type: telephone}]}\n",
        encoding="utf-8",
    )
    expected = r"rule r1, column x: unknown identifier type\(s\) telephone"
    with pytest.raises(CdpError, match=expected):
        load_registry(path)


def test_an_unknown_key_fails_naming_it(tmp_path):
    path = tmp_path / "registry.yaml"
    path.write_text(
        "types:\n  phone: {trust: medium, max_per_profile: 3, max_profile: 2}\nrules: []\n",
        encoding="utf-8",
    )
    with pytest.raises(CdpError, match=r"types.phone.max_profile"):
        load_registry(path)


def test_junk_phones_are_blocked_as_silver_tokens_them(spark):
    key = b"k" * 32
    blocked = load_registry().blocked_values(key)["phone"]
    spark_value = (
        spark.range(1)
        .select(spark_token("phone", F.lit("+8613800138000"), key).alias("t"))
        .first()["t"]
    )
    assert spark_value == token(key, "phone", "+8613800138000")
    assert spark_value in blocked


def test_trust_orders_the_types_before_the_files_order(tmp_path):
    path = tmp_path / "registry.yaml"
    path.write_text(
        "types:\n  phone: {trust: medium, max_per_profile: 3}\n"
        "  member_card: {trust: high, max_per_profile: 1}\n"
        "  device_id: {trust: medium, max_per_profile: 9}\nrules: []\n",
        encoding="utf-8",
    )
    assert load_registry(path).priority == {"member_card": 0, "phone": 1, "device_id": 2}
