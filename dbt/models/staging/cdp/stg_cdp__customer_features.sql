with

source as (

    select * from {{ source('cdp', 'customer_features') }}

),

renamed as (

    select
        -- ids
        cast(one_id as string) as one_id,
        cast(owner_guide as string) as owner_guide_id,

        -- strings
        cast(top_category as string) as top_category,
        cast(price_band as string) as price_band,
        cast(acquisition_state as string) as acquisition_live_code_state,
        cast(member_tier as string) as member_tier,
        channels as sales_channels,

        -- numerics
        cast(refund_rate as double) as refund_rate,
        cast(purchase_cycle_days as double) as purchase_cycle_days,
        cast(top_category_share as double) as top_category_share,
        cast(coupons_redeemed as bigint) as coupons_redeemed,
        cast(coupon_order_share as double) as coupon_order_share,
        cast(sessions_30d as bigint) as sessions_30d,
        cast(dwell_seconds_30d as double) as dwell_seconds_30d,
        cast(searches_30d as bigint) as searches_30d,
        cast(product_views_30d as bigint) as product_views_30d,
        cast(cart_adds_30d as bigint) as cart_adds_30d,
        cast(abandoned_carts_30d as bigint) as abandoned_carts_30d,
        cast(points_balance as bigint) as points_balance,

        -- booleans
        cast(is_wecom_friend as boolean) as is_wecom_friend,
        cast(oa_following as boolean) as is_oa_follower,

        -- dates and timestamps
        cast(last_event_at as timestamp) as last_event_at,
        cast(wecom_first_added_at as timestamp) as wecom_first_added_at,
        cast(last_interaction_at as timestamp) as last_wecom_interaction_at,
        cast(oa_followed_at as timestamp) as oa_followed_at,
        cast(as_of as date) as features_as_of

    from source

)

select * from renamed
