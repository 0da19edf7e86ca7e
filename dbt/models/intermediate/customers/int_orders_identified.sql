{#- Every order with the one_id One-ID gave its buyer (silver.identity_records, rule order_buyer). -#}
with

orders as (

    select * from {{ ref('stg_cdp__orders') }}

),

order_identities as (

    select * from {{ ref('stg_cdp__identity_records') }}
    where identity_rule = 'order_buyer'

),

identified as (

    select
        orders.*,
        order_identities.one_id

    from orders
    left join order_identities
        -- the rule's record key: source and order id (jobs/identity/registry.yaml)
        on order_identities.record_key = concat_ws('|', orders.source, orders.order_id)

)

select * from identified
