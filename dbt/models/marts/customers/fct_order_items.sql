{#- One row per order line with its order's customer and flags: category and price analysis
    per customer. A line of an order not (yet) in silver.orders has no customer. -#}
with

items as (

    select * from {{ ref('stg_cdp__order_items') }}
    where order_date <= {{ as_of_date() }}

),

orders as (

    select * from {{ ref('fct_orders') }}

),

final as (

    select
        concat_ws('|', items.source, items.order_id, items.line_id) as line_key,
        concat_ws('|', items.source, items.order_id) as order_key,
        items.source,
        items.order_id,
        items.line_id,
        orders.one_id,
        items.sku,
        items.product_title,
        items.category,
        items.quantity,
        items.unit_price,
        items.line_amount,
        items.is_free_line,
        items.line_status,
        items.refund_status,
        coalesce(orders.is_counted, false) as is_counted,
        items.order_date

    from items
    left join orders
        on orders.source = items.source
        and orders.order_id = items.order_id

)

select * from final
