{#- Every browse event with the one_id One-ID gave it (silver.identity_records, rule event:
    the event's own ids, sessions stitched to a known visitor); anonymous traffic has none. -#}
with

events as (

    select * from {{ ref('stg_cdp__events') }}

),

event_identities as (

    select * from {{ ref('stg_cdp__identity_records') }}
    where identity_rule = 'event'

),

identified as (

    select
        events.*,
        event_identities.one_id

    from events
    left join event_identities
        -- the rule's record key: the event id (jobs/identity/registry.yaml)
        on event_identities.record_key = events.event_id

)

select * from identified
