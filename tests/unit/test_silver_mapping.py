"""The typed silver mapping (jobs/common/silver_mapping.py): every spec's `silver:` section
validates when the specs load, and a bad one fails naming its file and key."""

import json
from pathlib import Path

import pytest
import yaml

from jobs.common.errors import CdpError
from jobs.common.order_states import ORDER_STATES
from jobs.common.silver_mapping import SilverMapping, parse_silver
from jobs.ingest import spec as spec_module
from jobs.ingest.spec import SPECS_DIR, load_specs, spec_from_json, spec_to_json

ORDER_SPECS = (
    "tmall.orders",
    "tmall.trades",
    "jd.orders",
    "douyin.orders",
    "pdd.orders",
    "youzan.orders",
    "miniprogram.orders",
    "pos.orders",
    "erp.orders",
)


def test_every_spec_silver_section_is_a_typed_mapping():
    specs = load_specs()
    with_silver = {k for k, s in specs.items() if s.silver is not None}
    assert set(ORDER_SPECS) <= with_silver
    for key in with_silver:
        spec = specs[key]
        assert isinstance(spec.silver, SilverMapping), key
        fields = {c.field for c in spec.columns}
        assert spec.silver.bronze_fields() <= fields, key
    for key in ORDER_SPECS:
        mapping = specs[key].silver
        assert mapping.orders, key
        assert set(mapping.status.values()) <= set(ORDER_STATES), key
        schema = specs[key].json_schema()["properties"]
        codes = set(schema[mapping.field("order_status")]["enum"])
        assert codes == set(mapping.status), key


def test_the_legacy_buyer_id_keys_are_retired():
    for path in sorted(SPECS_DIR.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        silver = raw.get("silver") or {}
        assert "buyer_id_field" not in silver, path.name
        assert "id_namespace" not in silver, path.name
    with pytest.raises(CdpError, match=r"x\.yaml: invalid silver mapping: silver\.buyer_id_field"):
        parse_silver({"status": {"A": "paid"}, "buyer_id_field": "nick"}, "x.yaml")


def test_the_buyer_ids_of_the_specs_are_in_priority_order():
    specs = load_specs()
    assert [(b.field, b.namespace) for b in specs["tmall.orders"].silver.buyer_ids] == [
        ("buyer_nick", "tmall_nick")
    ]
    assert [b.namespace for b in specs["miniprogram.orders"].silver.buyer_ids] == [
        "unionid",
        "openid",
    ]
    assert specs["miniprogram.orders"].silver.buyer_ids[1].qualifier_field == "appid"
    assert specs["pdd.orders"].silver.buyer_ids == ()  # no confirmed buyer id in the export


def test_only_platforms_with_their_own_modification_time_order_resyncs_by_it():
    specs = load_specs()
    modified = {k: specs[k].silver.modified_field for k in ORDER_SPECS}
    assert modified["tmall.trades"] == "modified"
    assert modified["youzan.orders"] == "update_time"
    assert {k for k, v in modified.items() if v} == {"tmall.trades", "youzan.orders"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"status": {"A": "shipping"}}, r"silver\.status: .*unknown order state\(s\) shipping"),
        ({"status": {"A": "paid"}, "fields": {"buyer": "x"}}, r"unknown standard field\(s\) buyer"),
        ({"status": {"A": "paid"}, "buyer_ids": [{"field": "x"}]}, r"buyer_ids\.0\.namespace"),
        ({"status": {"A": "paid"}, "refunded_when_refund": ["A"]}, r"needs a refund_field"),
        (
            {"status": {"A": "paid"}, "refund_field": "r", "refunded_when_refund": ["B"]},
            r"refunded_when_refund \['B'\] are not in the status map",
        ),
        ({"status": {}, "orders": True, "lines": True}, r"needs a status map"),
        ({"status": {"A": "paid"}, "lines": "sometimes"}, r"silver\.lines"),
        (["not", "a", "mapping"], r"expected a mapping"),
    ],
)
def test_a_bad_mapping_fails_naming_the_file_and_key(raw, message):
    with pytest.raises(CdpError, match=r"^spec\.yaml: invalid silver mapping: .*" + message):
        parse_silver(raw, "spec.yaml")


def test_a_mapping_naming_a_field_the_dataset_lacks_fails():
    raw = {"status": {"A": "paid"}, "buyer_ids": [{"field": "buyer_nik", "namespace": "n"}]}
    with pytest.raises(CdpError, match=r"spec\.yaml: .*field\(s\) buyer_nik are not fields"):
        parse_silver(raw, "spec.yaml", known_fields={"buyer_nick", "order_id"})
    # `_extra:` paths are read from the bronze row's _extra: not a mapped field
    ok = parse_silver(
        {"status": {"A": "paid"}, "fields": {"shipped_time": "_extra:a.b"}}, "s", {"order_id"}
    )
    assert ok.field("shipped_time") == "_extra:a.b"
    assert ok.field("pay_time") == "pay_time"  # not renamed: the standard name


def test_a_bad_spec_file_fails_when_the_specs_load_naming_it(tmp_path, monkeypatch):
    good = (SPECS_DIR / "pdd__orders.yaml").read_text(encoding="utf-8")
    bad = good.replace("    RECEIVED: completed", "    RECEIVED: delivered")
    assert bad != good
    (tmp_path / "pdd__orders.yaml").write_text(bad, encoding="utf-8")
    monkeypatch.setattr(spec_module, "SPECS_DIR", tmp_path)
    load_specs.cache_clear()
    try:
        with pytest.raises(CdpError, match=r"pdd__orders\.yaml: invalid silver mapping.*delivered"):
            load_specs()
    finally:
        load_specs.cache_clear()


def test_a_spec_goes_through_the_journal_with_its_mapping():
    spec = load_specs()["miniprogram.orders"]
    back = spec_from_json(spec_to_json(spec))
    assert back.silver == spec.silver
    assert back == spec
    legacy = json.loads(spec_to_json(spec))
    legacy["silver"] = {"buyer_id_field": "nick", "id_namespace": "x", "status": {}}
    assert spec_from_json(json.dumps(legacy)).silver is None  # ingestion never reads it


def test_order_states_are_the_suite_value_sets():
    for suite in ("silver.orders", "silver.order_status_history"):
        path = Path("expectations") / f"{suite}.json"
        expectations = json.loads(path.read_text(encoding="utf-8"))["expectations"]
        sets = [
            e["kwargs"]["value_set"]
            for e in expectations
            if e["type"] == "expect_column_values_to_be_in_set"
            and e["kwargs"]["column"] == "status"
        ]
        assert sets == [list(ORDER_STATES)], suite
