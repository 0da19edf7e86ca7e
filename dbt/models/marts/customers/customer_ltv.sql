{#- Lifetime value per customer as of the scoring run: jobs/marts/ltv.py fits BG/NBD and
    Gamma-Gamma (the same code as `cdp ltv`), this mart publishes it with its contract. -#}
with

ltv as (

    select * from {{ ref('stg_cdp__ltv_scores') }}

),

final as (

    select
        one_id,
        scored_as_of,
        first_purchase_date,
        last_purchase_date,
        repeat_periods,
        recency_periods,
        age_periods,
        repeat_mean_value,
        p_alive,
        expected_purchases_90d,
        expected_spend,
        clv_12m,
        is_churn_risk,
        churn_reason

    from ltv

)

select * from final
