{#- The members of each segment export (silver.segment_members, written by the export step,
    which runs after dbt: the history lags the day's exports by one run). -#}
with

source as (

    {{ optional_source('cdp', 'segment_members', {
        'segment': 'string', 'one_id': 'string', 'version': 'int', 'as_of': 'date'}) }}

),

renamed as (

    select
        -- ids
        cast(segment as string) as segment_name,
        cast(one_id as string) as one_id,

        -- numbers
        cast(version as int) as definition_version,

        -- dates and timestamps
        cast(as_of as date) as held_on

    from source

)

select * from renamed
