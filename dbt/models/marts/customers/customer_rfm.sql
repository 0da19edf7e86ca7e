{#- RFM per customer as of the scoring run: jobs/marts/rfm.py computes it (the same SQL as
    `cdp rfm`), this mart publishes it with its contract. -#}
with

rfm as (

    select * from {{ ref('stg_cdp__rfm_scores') }}

),

final as (

    select
        one_id,
        scored_as_of,
        recency_days,
        frequency,
        monetary,
        r_score,
        f_score,
        m_score,
        rfm_score,
        rfm_segment,
        rfm_class

    from rfm

)

select * from final
