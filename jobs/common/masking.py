"""Masking for text people read outside the raw layers: quality results and reports, quarantine
reasons, import previews, logs. One module, so every place masks the same way.

Bronze and quarantine hold raw personal data for the pipeline; anything derived for people
(ops.quality_results, the quality reports, `cdp quarantine list`, the import dry run) must not
carry a phone number, an ID card number or an email address that a failing value happened to
quote. Two functions:

- `mask_pii(text)`: masks what *looks like* personal data inside free text. Phones however they
  are written (``13800138000``, ``138 0000 1111``, ``138-0000-1111``, ``(138)0000.1111``,
  ``+86 138 0000 1111``, ``0086-13800001111``, full-width digits, ``138****1111`` as platforms
  mask them), landlines with an area code (``010-12345678``), 18-digit ID card numbers (with a
  trailing X), any other run of 7+ digits, and emails. A number keeps its first 3 and last 2
  characters (``138******11``), an email its first character and domain (``t***@test.com``).
  Dates and times (``2026-01-05 10:00:00``) are left alone. Masking masked text changes nothing.
- `mask_value(field, value)`: a value of a personal-data field (`is_personal_field`, decided by
  `PERSONAL_FIELD_WORDS` below, the one list of them) is replaced entirely by ``***``; any other
  value goes through `mask_pii`.
"""

from __future__ import annotations

import re

# --- personal-data fields -----------------------------------------------------------------------

# The one list of what makes a field personal data. A field name is split into lowercase words
# (snake_case, camelCase, kebab-case, dots: `receiver_mobile`, `buyerNick`, `ExternalUserID`);
# the field is personal when one of its words, or consecutive words written together, is listed
# here (`id_card` -> `idcard`, `yz_open_id` -> `openid`). Over-masking (a shop's `store_name`)
# is the accepted price of a rule anyone can predict. Pseudonymous technical ids (device,
# session, order ids) are not on it: their values still go through `mask_pii`.
PERSONAL_FIELD_WORDS: tuple[str, ...] = (
    # who a person is
    "name",
    "nick",
    "nickname",
    "realname",
    "receiver",
    "consignee",
    "contact",
    "buyer",
    "birthday",
    # how to reach them
    "phone",
    "mobile",
    "tel",
    "telephone",
    "cellphone",
    "email",
    "mail",
    "address",
    "addr",
    # ids that point at one person: ID cards, platform accounts (WeChat openid/unionid, Tmall
    # open_uid, JD pin, Youzan yz_open_id, WeCom external_userid, fans ids)
    "idcard",
    "idno",
    "identity",
    "passport",
    "openid",
    "unionid",
    "uid",
    "userid",
    "externaluserid",
    "pin",
    "fans",
    "account",
    "member",
    # what they wrote (chat archive, reviews, order notes)
    "content",
    "comment",
    "remark",
    "message",
)
_WORDS = frozenset(PERSONAL_FIELD_WORDS)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SEPARATORS = re.compile(r"[^0-9A-Za-z]+")
MASK = "***"


def field_words(field: str) -> list[str]:
    """`receiverMobile` -> ['receiver', 'mobile']; `buyer_open_uid` -> ['buyer', 'open', 'uid']."""
    return [w.lower() for w in _SEPARATORS.split(_CAMEL.sub("_", field)) if w]


def is_personal_field(field: str | None) -> bool:
    """Is this field personal data (its value is never shown outside the raw layers)?"""
    if not field:
        return False
    words = field_words(field)
    return any(
        "".join(words[i:j]) in _WORDS
        for i in range(len(words))
        for j in range(i + 1, len(words) + 1)
    )


def mask_value(field: str | None, value: object) -> str:
    """A value as it may be shown: ``***`` for a personal-data field (``""`` when missing), else
    the value as text with `mask_pii` applied."""
    if value is None:
        return ""
    if is_personal_field(field):
        return MASK
    return mask_pii(str(value))


# --- personal data in text ----------------------------------------------------------------------

_D = "0-9０-９"  # ASCII and full-width digits
_DIGIT = f"[{_D}]"
_STARRED = f"[{_D}*＊]"  # a digit, or a star a platform masked it with
_SEP = r"[ \t\-.．－—()（）]"  # between digit groups: space, dash, dot, brackets (also full width)
_NOT_AFTER_DIGIT = f"(?<![{_D}*＊])"
_NOT_BEFORE_DIGIT = f"(?![{_D}*＊])"
# Country code: +86, ＋86, 0086, (+86), (86), then maybe a separator.
_COUNTRY = f"(?:[(（]?(?:[+＋]|00|００)[8８][6６][)）]?|[(（][8８][6６][)）]){_SEP}?"

_EMAIL = re.compile(r"([^\s@'\"<>(),;:\[\]{}])[^\s@'\"<>(),;:\[\]{}]*@([^\s@'\"<>(),;:\[\]{}]+)")
_PATTERNS = [
    # ID card: 18 characters, the last maybe X; written 6-8-4 with separators or not
    re.compile(
        f"{_NOT_AFTER_DIGIT}(?P<n>{_STARRED}{{6}}{_SEP}?{_STARRED}{{8}}{_SEP}?{_STARRED}{{3}}"
        f"[{_D}*＊Xx])(?![{_D}*＊A-Za-z])"
    ),
    # mobile: 11 digits starting with 1 (stars allowed), any grouping, maybe a country code
    re.compile(
        f"{_NOT_AFTER_DIGIT}(?P<cc>{_COUNTRY})?(?P<n>[(（]?[1１](?:{_SEP}{{0,2}}{_STARRED}){{10}})"
        f"{_NOT_BEFORE_DIGIT}"
    ),
    # with a country code: whatever number follows (landlines abroad style, 7-12 digits)
    re.compile(
        f"{_NOT_AFTER_DIGIT}(?P<cc>{_COUNTRY})(?P<n>{_STARRED}(?:{_SEP}?{_STARRED}){{6,11}})"
        f"{_NOT_BEFORE_DIGIT}"
    ),
    # landline with an area code: 0 + 2-3 digits, then 7-8 digits (010-12345678, (0755)1234 5678)
    re.compile(
        f"{_NOT_AFTER_DIGIT}(?P<n>[(（]?[0０]{_DIGIT}{{2,3}}[)）]?{_SEP}{{0,2}}"
        f"{_STARRED}{{3,4}}{_SEP}?{_STARRED}{{4}}){_NOT_BEFORE_DIGIT}"
    ),
    # anything else: 7+ digits in a row, or 7+ digits and stars with at least 3 digits
    re.compile(f"(?P<n>{_DIGIT}{{7,}})"),
    re.compile(f"(?P<n>(?=(?:[*＊]*{_DIGIT}){{3}}){_STARRED}{{7,}})"),
]
_KEEP = re.compile(f"[{_D}Xx]")


def _mask_number(match: re.Match[str]) -> str:
    """Country code as written, then the number's digits (separators dropped) with all but the
    first 3 and last 2 characters starred."""
    chars = [c for c in match.group("n") if _KEEP.match(c) or c in "*＊"]
    if len(chars) < 7:
        return match.group()
    country = (match.groupdict().get("cc") or "").strip(" \t-.．－—")
    masked = "".join(chars[:3]) + "*" * (len(chars) - 5) + "".join(chars[-2:])
    return f"{country} {masked}" if country else masked


def mask_pii(text: str) -> str:
    """`text` with phones, ID card numbers, long digit runs and emails masked (see the module
    docstring); everything else as it was."""
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    for pattern in _PATTERNS:
        text = pattern.sub(_mask_number, text)
    return text
