{#- Each customer's lifecycle stage and tags on the latest scored date up to the as_of_date
    var (silver.customer_tag_days). -#}
with

held as (

    select * from {{ ref('stg_cdp__customer_tag_days') }}
    where held_on <= {{ as_of_date() }}

),

latest as (

    select max(held_on) as held_on from held

),

final as (

    select
        held.one_id,
        held.held_on,
        max(case when held.tag_kind = 'stage' then held.tag_name end) as lifecycle_stage,
        array_sort(collect_list(case when held.tag_kind = 'tag' then held.tag_name end)) as tags

    from held
    join latest
        on held.held_on = latest.held_on
    group by held.one_id, held.held_on

)

select * from final
