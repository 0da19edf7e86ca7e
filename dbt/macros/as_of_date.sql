{#- The `as_of_date` var as a Spark SQL date expression; today (session time zone) if unset. -#}
{% macro as_of_date() -%}
    {%- set as_of = var('as_of_date', '') -%}
    {%- if as_of -%}
        to_date('{{ as_of }}')
    {%- else -%}
        current_date()
    {%- endif -%}
{%- endmacro %}
