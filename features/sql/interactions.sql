-- Feature family: engagement from interactions (visits, page views, emails, calls, meetings, ...).
-- One row per customer, as of :as_of: only interactions dated before :as_of count.
WITH ix AS (
    SELECT customer_id, type, duration_s,
           date_diff('day', CAST(ts AS DATE), :as_of) AS age_days
    FROM interactions
    WHERE ts < :as_of
)
SELECT
    c.customer_id,
    min(ix.age_days) AS ix_recency_days,
    count(ix.age_days) AS ix_count,
    count(DISTINCT ix.type) AS ix_distinct_types
    {%- for w in windows %},
    count(ix.age_days) FILTER (WHERE ix.age_days <= {{ w }}) AS ix_count_{{ w }}d
    {%- for t in types %},
    count(ix.age_days) FILTER (WHERE ix.age_days <= {{ w }} AND ix.type = '{{ t }}') AS ix_{{ t }}_{{ w }}d
    {%- endfor %}
    {%- endfor %},
    coalesce(sum(ix.duration_s) FILTER (WHERE ix.age_days <= 30), 0) AS ix_duration_s_30d,
    count(ix.age_days) FILTER (WHERE ix.age_days <= 30)
        - count(ix.age_days) FILTER (WHERE ix.age_days > 30 AND ix.age_days <= 60) AS ix_count_trend_30d
FROM customers AS c
LEFT JOIN ix ON ix.customer_id = c.customer_id
GROUP BY c.customer_id
