with

customer_orders as (

    select * from {{ ref('int_customer_orders_aggregated') }}

),

customers as (

    select * from {{ ref('stg_cdp__customers') }}

),

rfm as (

    select * from {{ ref('stg_cdp__rfm_scores') }}

),

ltv as (

    select * from {{ ref('stg_cdp__ltv_scores') }}

),

final as (

    select
        customer_orders.one_id,
        coalesce(customers.phone_token, customer_orders.phone_token) as phone_token,
        customer_orders.first_order_date,
        customer_orders.last_order_date,
        customer_orders.orders_count,
        customer_orders.paid_orders_count,
        customer_orders.refunded_orders_count,
        customer_orders.total_amount,
        cast(
            case
                when customer_orders.paid_orders_count > 0
                    then customer_orders.total_amount / customer_orders.paid_orders_count
            end as decimal(18, 2)
        ) as avg_order_amount,
        datediff({{ as_of_date() }}, customer_orders.last_order_date) as days_since_last_order,
        customer_orders.sources,
        rfm.r_score,
        rfm.f_score,
        rfm.m_score,
        rfm.rfm_segment,
        rfm.rfm_class,
        ltv.p_alive,
        ltv.expected_purchases_90d,
        ltv.clv_12m,
        coalesce(ltv.is_churn_risk, false) as is_churn_risk

    from customer_orders
    left join customers
        on customer_orders.one_id = customers.one_id
    left join rfm
        on customer_orders.one_id = rfm.one_id
    left join ltv
        on customer_orders.one_id = ltv.one_id

)

select * from final
