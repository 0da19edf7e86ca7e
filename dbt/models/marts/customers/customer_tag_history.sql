{#- Who entered and left each stage and tag, and when: spans over the scored dates of
    silver.customer_tag_days (macros/membership_history.sql). -#}
with

held as (

    select * from {{ ref('stg_cdp__customer_tag_days') }}
    where held_on <= {{ as_of_date() }}

),

{{ membership_history('held', ['one_id', 'tag_kind', 'tag_name']) }}

select * from final
