{#- Spans of membership from daily partitions: the days a key (a customer's tag, a segment's
    member) was held in a row, over the dates scored (per `days_per`, e.g. a segment's own
    export dates), become one span; exited_at is the first scored date without it (null while
    still held). A backfilled day fills its own gap.

    `held`: a CTE with the `keys` columns and held_on. Emits the CTEs scored_days, numbered,
    spans and final (keys..., entered_at, last_held_on, exited_at); the caller selects from
    final. -#}
{% macro membership_history(held, keys, days_per=[]) %}
{%- set per = days_per | join(', ') -%}
{%- set per_comma = (per ~ ', ') if days_per else '' -%}
scored_days as (

    select
        {{ per_comma }}held_on,
        row_number() over (
            {% if days_per %}partition by {{ per }} {% endif %}order by held_on
        ) as day_number

    from (select distinct {{ per_comma }}held_on from {{ held }}) days

),

numbered as (

    select
        {% for key in keys %}{{ held }}.{{ key }},
        {% endfor %}{{ held }}.held_on,
        scored_days.day_number,
        scored_days.day_number - row_number() over (
            partition by {% for key in keys %}{{ held }}.{{ key }}{{ ', ' if not loop.last }}{% endfor %}
            order by scored_days.day_number
        ) as island

    from {{ held }}
    join scored_days
        on {{ held }}.held_on = scored_days.held_on
        {% for column in days_per %}and {{ held }}.{{ column }} = scored_days.{{ column }}
        {% endfor %}

),

spans as (

    select
        {{ keys | join(', ') }},
        min(held_on) as entered_at,
        max(held_on) as last_held_on,
        max(day_number) as last_day_number

    from numbered
    group by {{ keys | join(', ') }}, island

),

final as (

    select
        {% for key in keys %}spans.{{ key }},
        {% endfor %}spans.entered_at,
        spans.last_held_on,
        next_day.held_on as exited_at

    from spans
    left join scored_days as next_day
        on next_day.day_number = spans.last_day_number + 1
        {% for column in days_per %}and next_day.{{ column }} = spans.{{ column }}
        {% endfor %}

)
{% endmacro %}
