"""One masking for every place a sample, reason or preview is shown: phones however written,
ID cards, emails; whole values of personal-data fields."""

import pytest

from jobs.common.masking import (
    PERSONAL_FIELD_WORDS,
    is_personal_field,
    mask_pii,
    mask_value,
)

PHONES = [
    # (as written, masked)
    ("13800001111", "138******11"),
    ("138 0000 1111", "138******11"),
    ("138  0000  1111", "138******11"),
    ("138-0000-1111", "138******11"),
    ("138.0000.1111", "138******11"),
    ("138 00001111", "138******11"),
    ("(138)0000-1111", "138******11"),
    ("（138）0000－1111", "138******11"),
    ("+86 138 0000 1111", "+86 138******11"),
    ("+86-138-0000-1111", "+86 138******11"),
    ("+8613800001111", "+86 138******11"),
    ("＋86 138 0000 1111", "＋86 138******11"),
    ("(+86) 138 0000 1111", "(+86) 138******11"),
    ("0086 13800001111", "0086 138******11"),
    ("0086-138-0000-1111", "0086 138******11"),
    ("１３８００００１１１１", "１３８******１１"),
    ("１３８ ００００ １１１１", "１３８******１１"),
    ("138****1111", "138******11"),
    ("138 **** 1111", "138******11"),
    ("138＊＊＊＊1111", "138******11"),
    ("010-12345678", "010******78"),
    ("(0755) 1234 5678", "075*******78"),
    ("+86 10 1234 5678", "+86 101*****78"),
]


@pytest.mark.parametrize(("written", "masked"), PHONES)
def test_phones_are_masked_however_written(written, masked):
    assert mask_pii(written) == masked
    # inside text, next to Chinese, quotes and punctuation
    assert mask_pii(f"电话{written}，") == f"电话{masked}，"
    assert mask_pii(f"e.g. ['{written}', None]") == f"e.g. ['{masked}', None]"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("11010119900101123X", "110*************3X"),
        ("11010119900101123x", "110*************3x"),
        ("110101199001011234", "110*************34"),
        ("110101 19900101 123X", "110*************3X"),
        ("test@test.com", "t***@test.com"),
        ("Reach me: zhang.san+vip@example.com.cn.", "Reach me: z***@example.com.cn."),
        ("'a@b.cn'", "'a***@b.cn'"),
        ("6222021234567890123", "622**************23"),  # any 7+ digit run
        ("order 1234567", "order 123**67"),
        ("138 0000 1111 and 139-0000-2222", "138******11 and 139******22"),
    ],
)
def test_id_cards_emails_and_long_numbers_are_masked(text, masked):
    assert mask_pii(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "TRADE_CLOSED",
        "0755-1234",
        "2026-01-05",
        "2026-01-05 10:00:00",
        "observed '2026-01-05T10:00:00+08:00'",
        "Decimal('12.50')",
        "unexpected 3 of 100 (null 1)",
        "line 12",
        "123456",
    ],
)
def test_dates_amounts_and_short_numbers_are_kept(text):
    assert mask_pii(text) == text


def test_masking_masked_text_changes_nothing():
    for written, masked in PHONES:
        assert mask_pii(masked) == masked, written
    for text in ("110*************3X", "t***@test.com", "+86 138******11"):
        assert mask_pii(text) == text


def test_the_original_example_keeps_its_masking():
    text = "['13800138000', 'test@test.com', '１５６０１８８１６７７', 'TRADE_CLOSED', '0755-1234']"
    assert mask_pii(text) == (
        "['138******00', 't***@test.com', '１５６******７７', 'TRADE_CLOSED', '0755-1234']"
    )


@pytest.mark.parametrize(
    "field",
    [
        "receiver_name",
        "receiver_mobile",
        "receiver_address",
        "receiver",
        "buyer_phone",
        "buyer_nick",
        "buyerNick",
        "nick",
        "mobile",
        "member_mobile",
        "invoice_email",
        "id_card",
        "idCard",
        "openid",
        "unionid",
        "yz_open_id",
        "buyer_open_uid",
        "buyer_pin",
        "external_userid",
        "ExternalUserID",
        "user_id",
        "fans_id",
        "text_content",
        "consignee",
    ],
)
def test_personal_fields_are_masked_entirely(field):
    assert is_personal_field(field)
    assert mask_value(field, "张三 2026-01-05") == "***"
    assert mask_value(field, None) == ""


@pytest.mark.parametrize(
    "field", ["order_id", "order_status", "payment", "created", "item_title", "device_id", None]
)
def test_other_fields_are_masked_only_where_they_quote_personal_data(field):
    assert not is_personal_field(field)
    assert mask_value(field, "TRADE_CLOSED") == "TRADE_CLOSED"
    assert mask_value(field, 12.5) == "12.5"
    assert mask_value(field, "call +86 138 0000 1111") == "call +86 138******11"


def test_the_field_list_is_lowercase_words():
    assert all(w == w.lower() and w.isalnum() for w in PERSONAL_FIELD_WORDS)
    assert len(set(PERSONAL_FIELD_WORDS)) == len(PERSONAL_FIELD_WORDS)
