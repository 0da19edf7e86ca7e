with

source as (

    select * from {{ source('cdp', 'customer_rfm') }}

),

renamed as (

    select
        -- ids
        cast(one_id as string) as one_id,

        -- strings
        cast(rfm_score as string) as rfm_score,
        cast(rfm_segment as string) as rfm_segment,
        cast(rfm_class as string) as rfm_class,

        -- numerics
        cast(recency_days as int) as recency_days,
        cast(frequency as bigint) as frequency,
        cast(monetary as decimal(18, 2)) as monetary,
        cast(r_score as int) as r_score,
        cast(f_score as int) as f_score,
        cast(m_score as int) as m_score,

        -- dates and timestamps
        cast(as_of as date) as scored_as_of

    from source

)

select * from renamed
