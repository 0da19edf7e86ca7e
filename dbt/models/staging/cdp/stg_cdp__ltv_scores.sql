with

source as (

    select * from {{ source('cdp', 'customer_ltv') }}

),

renamed as (

    select
        -- ids
        cast(one_id as string) as one_id,

        -- strings
        cast(churn_reason as string) as churn_reason,

        -- numerics: the buy-till-you-die summary, in purchase periods (jobs/marts/ltv.yaml)
        cast(frequency as double) as repeat_periods,
        cast(recency as double) as recency_periods,
        cast(T as double) as age_periods,
        cast(monetary_value as double) as repeat_mean_value,
        cast(p_alive as double) as p_alive,
        cast(expected_purchases_90d as double) as expected_purchases_90d,
        cast(expected_spend as double) as expected_spend,
        cast(clv_12m as double) as clv_12m,

        -- booleans
        cast(churn_risk as boolean) as is_churn_risk,

        -- dates and timestamps
        cast(first_order_date as date) as first_purchase_date,
        cast(last_order_date as date) as last_purchase_date,
        cast(as_of as date) as scored_as_of

    from source

)

select * from renamed
