-- Feature family: engagement from interactions (visits, page views, emails, calls, meetings, ...).
-- One row per customer, as of :as_of: only interactions dated before :as_of count.
-- Events are aggregated per customer first, then joined to the customers (who may have none).
-- type_code numbers the configured types (0: any other type) so that each count compares integers.
-- Entities on their own clock (entity_days set: labels.outcome.kind days_to_win, e.g. activities keyed by
-- the deal) are described as of their start (customers.created_at) plus entity_days days, or :as_of when
-- that is earlier: windows and days count back from that date.
{%- set as_of = "k.as_of" if entity_days is not none else ":as_of" %}
WITH
{%- if entity_days is not none %}
clock AS (
    SELECT customer_id, least(CAST(created_at AS DATE) + {{ entity_days }}, :as_of) AS as_of
    FROM customers
),
{%- endif %}
ix AS (
    SELECT i.customer_id, i.duration_s,
           date_diff('day', CAST(i.ts AS DATE), {{ as_of }}) AS age_days
           {%- if types %},
           CASE i.type{% for t in types %} WHEN '{{ t }}' THEN {{ loop.index }}{% endfor %} ELSE 0 END AS type_code
           {%- endif %}
    FROM interactions AS i
    {%- if entity_days is not none %}
    JOIN clock AS k ON k.customer_id = i.customer_id
    {%- endif %}
    WHERE i.ts < {{ as_of }}
),
per_customer AS (
    SELECT
        customer_id,
        min(age_days) AS ix_recency_days,
        count(*) AS ix_count
        {%- for w in windows %},
        count_if(age_days <= {{ w }}) AS ix_count_{{ w }}d
        {%- for t in types %},
        count_if(age_days <= {{ w }} AND type_code = {{ loop.index }}) AS ix_{{ t }}_{{ w }}d
        {%- endfor %}
        {%- endfor %},
        count_if(age_days > 30 AND age_days <= 60) AS ix_count_prev_30d,
        -- whole milliseconds: integer-valued doubles add up exactly, in any order
        sum(round(duration_s * 1000)) FILTER (WHERE age_days <= 30) / 1000 AS ix_duration_s_30d
    FROM ix
    GROUP BY customer_id
)
SELECT
    c.customer_id,
    p.ix_recency_days,
    coalesce(p.ix_count, 0) AS ix_count
    {%- for w in windows %},
    coalesce(p.ix_count_{{ w }}d, 0) AS ix_count_{{ w }}d
    {%- for t in types %},
    coalesce(p.ix_{{ t }}_{{ w }}d, 0) AS ix_{{ t }}_{{ w }}d
    {%- endfor %}
    {%- endfor %},
    {%- if types %}
    {% for t in types %}CAST(coalesce(p.ix_{{ t }}_{{ windows[-1] }}d, 0) > 0 AS INTEGER){{ " + " if not loop.last }}{% endfor %}
        AS ix_distinct_types_{{ windows[-1] }}d,
    {%- endif %}
    coalesce(p.ix_duration_s_30d, 0) AS ix_duration_s_30d,
    coalesce(p.ix_count_30d, 0) - coalesce(p.ix_count_prev_30d, 0) AS ix_count_trend_30d
FROM customers AS c
LEFT JOIN per_customer AS p ON p.customer_id = c.customer_id
