{#- One row per customer: their order history up to and including the as_of_date var. -#}
with

orders as (

    select * from {{ ref('int_orders_identified') }}
    where order_date <= {{ as_of_date() }}
        -- orders One-ID could give no one (no usable phone or buyer id) make no customer
        and one_id is not null
        -- test orders (0-yuan, 测试) and 刷单 are no customer's history (silver keeps and flags them)
        and not coalesce(is_test_order, false)
        and not coalesce(is_fake_order, false)

),

customer_orders as (

    select
        one_id,

        max(phone_token) as phone_token,
        min(order_date) as first_order_date,
        max(order_date) as last_order_date,

        count(*) as orders_count,
        count_if(order_status in ('paid', 'shipped', 'completed')) as paid_orders_count,
        count_if(order_status = 'refunded') as refunded_orders_count,

        -- net revenue: paid orders only (refunded and closed orders bring in nothing)
        cast(
            coalesce(
                sum(case when order_status in ('paid', 'shipped', 'completed') then order_amount end),
                0
            ) as decimal(18, 2)
        ) as total_amount,

        array_sort(collect_set(source)) as sources

    from orders
    group by one_id

)

select * from customer_orders
