with

source as (

    select * from {{ source('cdp', 'orders') }}

),

renamed as (

    select
        -- ids
        cast(order_id as string) as order_id,
        cast(phone_token as string) as phone_token,

        -- strings
        lower(cast(source as string)) as source,
        lower(cast(status as string)) as order_status,

        -- numerics
        cast(amount as decimal(18, 2)) as order_amount,

        -- booleans: silver's flags (jobs/silver/flags.py); the rows stay, marts leave them out
        coalesce(cast(is_test as boolean), false) as is_test_order,
        coalesce(cast(is_fake as boolean), false) as is_fake_order,

        -- dates and timestamps
        cast(order_date as date) as order_date,
        cast(order_ts as timestamp) as ordered_at

    from source

)

select * from renamed
