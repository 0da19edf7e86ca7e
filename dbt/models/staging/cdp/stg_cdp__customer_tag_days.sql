with

source as (

    select * from {{ source('cdp', 'customer_tag_days') }}

),

renamed as (

    select
        -- ids
        cast(one_id as string) as one_id,

        -- strings
        cast(kind as string) as tag_kind,
        cast(tag as string) as tag_name,

        -- dates and timestamps
        cast(as_of as date) as held_on

    from source

)

select * from renamed
