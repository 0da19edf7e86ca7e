{#- Who entered and left each segment, and when: spans over each segment's own export dates
    (silver.segment_members, one partition per export date; macros/membership_history.sql).
    exited_at is the segment's first export without the customer. -#}
with

held as (

    select * from {{ ref('stg_cdp__segment_members') }}
    where held_on <= {{ as_of_date() }}

),

{{ membership_history('held', ['segment_name', 'one_id'], days_per=['segment_name']) }}

select * from final
