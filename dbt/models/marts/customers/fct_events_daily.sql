{#- Browse activity per customer, day and source: events of each kind, sessions and dwell.
    Anonymous traffic (no one_id) is one row per day and source. -#}
with

events as (

    select * from {{ ref('int_events_identified') }}
    where event_date <= {{ as_of_date() }}

),

final as (

    select
        event_date,
        one_id,
        source,
        count(*) as events,
        count(distinct session_id) as sessions,
        count_if(event_type = 'product_view') as product_views,
        count_if(event_type = 'search') as searches,
        count_if(event_type = 'add_to_cart') as cart_adds,
        count_if(event_type = 'share') as shares,
        cast(coalesce(sum(dwell_ms), 0) / 1000 as double) as dwell_seconds,
        min(occurred_at) as first_event_at,
        max(occurred_at) as last_event_at

    from events
    group by event_date, one_id, source

)

select * from final
