with

source as (

    select * from {{ source('cdp', 'identity_records') }}

),

renamed as (

    select
        -- ids
        cast(one_id as string) as one_id,
        cast(rule as string) as identity_rule,
        cast(record_key as string) as record_key

    from source

)

select * from renamed
