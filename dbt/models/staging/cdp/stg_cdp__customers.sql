with

source as (

    select * from {{ source('cdp', 'customers') }}

),

renamed as (

    select
        -- ids
        cast(customer_key as string) as customer_key,
        cast(phone_token as string) as phone_token,

        -- dates and timestamps
        cast(first_order_date as date) as first_order_date,
        cast(last_order_date as date) as last_order_date,
        cast(updated_at as timestamp) as updated_at

    from source

)

select * from renamed
