with

source as (

    select * from {{ source('cdp', 'customers') }}

),

renamed as (

    select
        -- ids
        cast(one_id as string) as one_id,
        cast(phone_token as string) as phone_token,
        cast(member_card as string) as member_card,

        -- numerics
        cast(identifiers as bigint) as identifiers_count,

        -- dates and timestamps
        cast(one_id_since as date) as one_id_since,
        cast(first_seen as timestamp) as first_seen_at,
        cast(last_seen as timestamp) as last_seen_at

    from source

)

select * from renamed
