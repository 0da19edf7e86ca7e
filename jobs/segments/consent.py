"""Who may receive what: the consent ledger's state per One-ID profile, as DuckDB SQL.

silver.consent_state (jobs/silver/consents.py) holds, per subject (a phone token, member card,
unionid or openid) and purpose, the latest decision. A profile holds several subjects (One-ID's
identity_map); its decision for a purpose is the latest of theirs (a withdrawal wins a tie), and
a profile none of whose subjects decided has the purpose's configured default.
"""

from __future__ import annotations

from jobs.common.lake import sql_literal as quote

STATE_TABLE = "silver.consent_state"
IDENTITY_MAP = "silver.identity_map"
MARKETING_PURPOSES = ("marketing_sms", "marketing_wecom", "marketing_oa", "ads_audience")
# consent subject type -> One-ID identifier type (an openid subject is "<appid>:<openid>")
SUBJECT_TYPES = {
    "phone_token": "phone",
    "member_card": "member_card",
    "unionid": "wechat_unionid",
    "openid": "wechat_openid",
}


def _decisions(purposes: tuple[str, ...]) -> str:
    """Every decision a profile's subjects made: its one_id and the state's columns (granted,
    last_event_at, ...)."""
    return f"""
    select m.one_id, s.*
    from {STATE_TABLE} s join {IDENTITY_MAP} m
      on m.identifier_type = case s.subject_type
             {" ".join(f"when '{k}' then '{v}'" for k, v in SUBJECT_TYPES.items())} end
     and m.identifier = case when s.subject_type = 'openid' and s.subject_id like '%:%'
             then substr(s.subject_id, strpos(s.subject_id, ':') + 1) else s.subject_id end
    where s.purpose in ({", ".join(quote(p) for p in purposes)}) and s.granted is not null
    """


# A profile any of whose identifiers said "no" last to a marketing purpose (a withdrawal, an
# SMS 退订, an import's "no"): left out of the WeCom tag export whatever else it said.
OPTOUT_SQL = f"select distinct one_id from ({_decisions(MARKETING_PURPOSES)}) where not granted"


def decided_sql(purpose: str) -> str:
    """(one_id, granted): each profile's latest decision on `purpose` (profiles that made none
    are absent: they have the purpose's default)."""
    return f"""
    select one_id, granted from (
        select one_id, granted, row_number() over (
            partition by one_id order by last_event_at desc nulls last, granted) as rn
        from ({_decisions((purpose,))})
    ) where rn = 1
    """
