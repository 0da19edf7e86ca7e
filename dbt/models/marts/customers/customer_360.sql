{#- One row per One-ID profile: order history up to the as_of_date var, the scoring step's
    features, RFM and LTV. A profile with no order (a WeCom friend, an OA follower, a member who
    never bought) has zero counts and null order dates. -#}
with

customers as (

    select * from {{ ref('stg_cdp__customers') }}

),

customer_orders as (

    select * from {{ ref('int_customer_orders_aggregated') }}

),

features as (

    select * from {{ ref('stg_cdp__customer_features') }}

),

rfm as (

    select * from {{ ref('stg_cdp__rfm_scores') }}

),

ltv as (

    select * from {{ ref('stg_cdp__ltv_scores') }}

),

tags as (

    select * from {{ ref('customer_tags') }}

),

final as (

    select
        customers.one_id,
        coalesce(customers.phone_token, customer_orders.phone_token) as phone_token,
        customers.member_card,
        customers.one_id_since,

        -- orders
        customer_orders.first_order_date,
        customer_orders.last_order_date,
        coalesce(customer_orders.orders_count, 0) as orders_count,
        coalesce(customer_orders.paid_orders_count, 0) as paid_orders_count,
        coalesce(customer_orders.refunded_orders_count, 0) as refunded_orders_count,
        coalesce(customer_orders.total_amount, cast(0 as decimal(18, 2))) as total_amount,
        cast(
            case
                when customer_orders.paid_orders_count > 0
                    then customer_orders.total_amount / customer_orders.paid_orders_count
            end as decimal(18, 2)
        ) as avg_order_amount,
        datediff({{ as_of_date() }}, customer_orders.last_order_date) as days_since_last_order,
        customer_orders.sources,
        features.sales_channels,
        features.refund_rate,
        features.purchase_cycle_days,
        features.top_category,
        features.top_category_share,
        features.price_band,
        coalesce(features.coupons_redeemed, 0) as coupons_redeemed,
        features.coupon_order_share,

        -- browsing (the last 30 days)
        features.last_event_at,
        coalesce(features.sessions_30d, 0) as sessions_30d,
        coalesce(features.dwell_seconds_30d, 0) as dwell_seconds_30d,
        coalesce(features.searches_30d, 0) as searches_30d,
        coalesce(features.product_views_30d, 0) as product_views_30d,
        coalesce(features.cart_adds_30d, 0) as cart_adds_30d,
        coalesce(features.abandoned_carts_30d, 0) as abandoned_carts_30d,

        -- WeCom, Official Account, membership
        features.acquisition_live_code_state,
        coalesce(features.is_wecom_friend, false) as is_wecom_friend,
        features.owner_guide_id,
        features.last_wecom_interaction_at,
        coalesce(features.is_oa_follower, false) as is_oa_follower,
        features.member_tier,
        features.points_balance,

        -- lifecycle and tags (jobs/marts/tags.yaml)
        tags.lifecycle_stage,
        coalesce(tags.tags, array()) as tags,

        -- scores
        rfm.r_score,
        rfm.f_score,
        rfm.m_score,
        rfm.rfm_segment,
        rfm.rfm_class,
        ltv.p_alive,
        ltv.expected_purchases_90d,
        ltv.clv_12m,
        coalesce(ltv.is_churn_risk, false) as is_churn_risk

    from customers
    left join customer_orders
        on customers.one_id = customer_orders.one_id
    left join features
        on customers.one_id = features.one_id
    left join rfm
        on customers.one_id = rfm.one_id
    left join ltv
        on customers.one_id = ltv.one_id
    left join tags
        on customers.one_id = tags.one_id

)

-- Sorted by one_id: each file holds a range of ids, so a lookup of one customer (the profile
-- path, jobs/marts/profile.py) reads the one file whose statistics hold it.
select * from final
order by one_id
