with

source as (

    {{ optional_source('cdp', 'events', {
        'source': 'string', 'event_id': 'string', 'event_type': 'string',
        'event_ts': 'timestamp', 'event_date': 'date', 'session_id': 'string',
        'product_id': 'string', 'dwell_ms': 'bigint', 'quantity': 'int',
        'search_term': 'string'}) }}

),

renamed as (

    select
        -- ids
        cast(event_id as string) as event_id,
        cast(session_id as string) as session_id,
        cast(product_id as string) as product_id,

        -- strings
        lower(cast(source as string)) as source,
        lower(cast(event_type as string)) as event_type,
        cast(search_term as string) as search_term,

        -- numerics
        cast(dwell_ms as bigint) as dwell_ms,
        cast(quantity as int) as quantity,

        -- dates and timestamps
        cast(event_date as date) as event_date,
        cast(event_ts as timestamp) as occurred_at

    from source

)

select * from renamed
