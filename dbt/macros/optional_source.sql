{#- `select * from` a source table, or no rows of `columns` ({name: spark type}) while the table
    does not exist yet (a lake before its first browse event, order line or segment export):
    the models built on it publish empty rather than fail. -#}
{% macro optional_source(source_name, table_name, columns) %}
    {%- if load_relation(source(source_name, table_name)) -%}
    select * from {{ source(source_name, table_name) }}
    {%- else -%}
    select
        {% for name, type in columns.items() -%}
        cast(null as {{ type }}) as {{ name }}{{ "," if not loop.last }}
        {% endfor -%}
    where false
    {%- endif -%}
{% endmacro %}
