"""The WeCom tag-assignment export: the day's tag changes in the shape WeCom's API takes.

WeCom tags a customer per relationship: ``POST /cgi-bin/externalcontact/mark_tag`` with
``{"userid": guide, "external_userid": ..., "add_tag": [...], "remove_tag": [...]}``. This export
writes one such object per active relationship (a guide and a customer who are friends now)
whose tags changed since the previous scored date, with tag *names* (`add_tag_names`,
`remove_tag_names`) under one tag group. The sender looks the names up in the corp's tag
library (``get_corp_tag_list``, creating the missing ones with ``add_corp_tag``) and posts
ids. Only tags go out, not lifecycle stages. A customer who deleted the guide is no longer in an
active relationship and gets nothing; one who said no to a marketing purpose (the opt-outs every
segment export drops, jobs/segments/consent.py) gets nothing either.

Layout: ``{exports_dir}/wecom_tags/{date}/mark_tag.jsonl`` and ``manifest.json``; written into a
temporary folder and renamed, so it appears whole or not at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from jobs.common import duck
from jobs.common.errors import CdpError
from jobs.common.settings import Settings, get_settings
from jobs.segments.consent import OPTOUT_SQL, STATE_TABLE
from jobs.segments.export import whole_folder, write_manifest

TAG_DAYS = "silver.customer_tag_days"
RELATIONSHIPS = "silver.wecom_relationships"
IDENTITY_MAP = "silver.identity_map"
TAG_GROUP = "CDP"


@dataclass(frozen=True)
class WecomTagExport:
    folder: Path
    relationships: int
    added: int
    removed: int


def _changes_sql(day: date) -> str:
    d = f"date '{day.isoformat()}'"
    return f"""
        with days as (select distinct as_of from {TAG_DAYS} where as_of <= {d}),
        today as (select max(as_of) as as_of from days),
        before as (select max(as_of) as as_of from days where as_of < (select as_of from today)),
        now_held as (
            select one_id, tag from {TAG_DAYS}
            where kind = 'tag' and as_of = (select as_of from today)
        ),
        was_held as (
            select one_id, tag from {TAG_DAYS}
            where kind = 'tag' and as_of = (select as_of from before)
        ),
        changes as (
            select coalesce(n.one_id, w.one_id) as one_id, coalesce(n.tag, w.tag) as tag,
                   n.tag is not null as added
            from now_held n full join was_held w on n.one_id = w.one_id and n.tag = w.tag
            where n.tag is null or w.tag is null
        ),
        friends as (
            select m.one_id, r.guide_user_id, r.external_userid
            from {RELATIONSHIPS} r
            join {IDENTITY_MAP} m
              on m.identifier_type = 'wecom_external_userid' and m.identifier = r.external_userid
            where lower(r.status) = 'active'
        )
        , opted_out as ({OPTOUT_SQL})
        select f.guide_user_id, f.external_userid,
               list_sort(list(c.tag) filter (where c.added)) as add_tag_names,
               list_sort(list(c.tag) filter (where not c.added)) as remove_tag_names
        from changes c join friends f on f.one_id = c.one_id
        where c.one_id not in (select one_id from opted_out)
        group by f.guide_user_id, f.external_userid
        order by f.guide_user_id, f.external_userid
    """


def export_wecom_tags(day: date, settings: Settings | None = None) -> WecomTagExport:
    settings = settings or get_settings()
    con = duck.connect(settings)
    tables = duck.table_names(con)
    missing = [t for t in (TAG_DAYS, RELATIONSHIPS, IDENTITY_MAP, STATE_TABLE) if t not in tables]
    if missing:
        raise CdpError(f"wecom tags: {', '.join(missing)} does not exist yet: run the daily batch")
    rows = con.execute(_changes_sql(day)).fetchall()
    final = Path(settings.exports_dir) / "wecom_tags" / day.isoformat()
    lines = [
        json.dumps(
            {
                "userid": guide,
                "external_userid": external,
                "tag_group": TAG_GROUP,
                "add_tag_names": added or [],
                "remove_tag_names": removed or [],
            },
            ensure_ascii=False,
        )
        for guide, external, added, removed in rows
    ]
    added = sum(len(r[2] or []) for r in rows)
    removed = sum(len(r[3] or []) for r in rows)
    manifest = {
        "export": "wecom_tags",
        "date": day.isoformat(),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "api": "POST /cgi-bin/externalcontact/mark_tag (names -> ids via get_corp_tag_list)",
        "counts": {"relationships": len(rows), "add_tag": added, "remove_tag": removed},
    }
    with whole_folder(final) as staging:
        body = "".join(line + "\n" for line in lines)
        (staging / "mark_tag.jsonl").write_text(body, encoding="utf-8")
        write_manifest(staging, manifest, ("mark_tag.jsonl",))
    return WecomTagExport(final, len(rows), added, removed)
