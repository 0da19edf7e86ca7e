with

source as (

    {{ optional_source('cdp', 'order_items', {
        'source': 'string', 'order_id': 'string', 'line_id': 'string', 'sku': 'string',
        'sku_id': 'string', 'title': 'string', 'category': 'string', 'quantity': 'int',
        'unit_price': 'decimal(18,2)', 'line_amount': 'decimal(18,2)', 'free_line': 'boolean',
        'status': 'string', 'refund_status': 'string', 'order_ts': 'timestamp',
        'order_date': 'date'}) }}

),

renamed as (

    select
        -- ids
        cast(order_id as string) as order_id,
        cast(line_id as string) as line_id,
        cast(sku as string) as sku,
        cast(sku_id as string) as sku_id,

        -- strings
        lower(cast(source as string)) as source,
        cast(title as string) as product_title,
        cast(category as string) as category,
        lower(cast(status as string)) as line_status,
        cast(refund_status as string) as refund_status,

        -- numerics
        cast(quantity as int) as quantity,
        cast(unit_price as decimal(18, 2)) as unit_price,
        cast(line_amount as decimal(18, 2)) as line_amount,

        -- booleans
        coalesce(cast(free_line as boolean), false) as is_free_line,

        -- dates and timestamps
        cast(order_date as date) as order_date,
        cast(order_ts as timestamp) as ordered_at

    from source

)

select * from renamed
