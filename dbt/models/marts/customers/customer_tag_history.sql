{#- Who entered and left each stage and tag, and when: the days a customer held a tag in a row
    (over the scored dates of silver.customer_tag_days) become one span; exited_at is the first
    scored date without it (null while still held). A backfilled day fills its own gap. -#}
with

held as (

    select * from {{ ref('stg_cdp__customer_tag_days') }}
    where held_on <= {{ as_of_date() }}

),

scored_days as (

    select held_on, row_number() over (order by held_on) as day_number
    from (select distinct held_on from held) days

),

numbered as (

    select
        held.one_id,
        held.tag_kind,
        held.tag_name,
        held.held_on,
        scored_days.day_number,
        scored_days.day_number - row_number() over (
            partition by held.one_id, held.tag_kind, held.tag_name
            order by scored_days.day_number
        ) as island

    from held
    join scored_days
        on held.held_on = scored_days.held_on

),

spans as (

    select
        one_id,
        tag_kind,
        tag_name,
        min(held_on) as entered_at,
        max(held_on) as last_held_on,
        max(day_number) as last_day_number

    from numbered
    group by one_id, tag_kind, tag_name, island

),

final as (

    select
        spans.one_id,
        spans.tag_kind,
        spans.tag_name,
        spans.entered_at,
        spans.last_held_on,
        next_day.held_on as exited_at

    from spans
    left join scored_days as next_day
        on next_day.day_number = spans.last_day_number + 1

)

select * from final
