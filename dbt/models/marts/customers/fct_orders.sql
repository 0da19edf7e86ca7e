{#- One row per order of every source with its customer (One-ID), status and amounts. Test and
    fake orders stay, flagged: is_counted says whether an order counts in value figures (paid,
    shipped or completed; neither test nor fake). -#}
with

orders as (

    select * from {{ ref('int_orders_identified') }}

),

final as (

    select
        concat_ws('|', source, order_id) as order_key,
        source,
        order_id,
        one_id,
        order_status,
        order_amount,
        is_test_order,
        is_fake_order,
        order_status in ('paid', 'shipped', 'completed')
            and not is_test_order and not is_fake_order as is_counted,
        order_date,
        ordered_at

    from orders
    where order_date <= {{ as_of_date() }}

)

select * from final
