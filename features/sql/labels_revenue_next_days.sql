-- Outcome labels: net revenue in the :horizon days from :as_of, as value tiers by cut points.
-- One row per customer, as of :as_of; only transactions dated before :observed_until are seen.
-- Censoring rule: when the horizon is not fully observed by :observed_until nobody gets a tier (NULL).
WITH revenue AS (
    SELECT customer_id, sum(round(amount * 10000)) / 10000 AS revenue   -- exact money, as in rfm.sql
    FROM transactions
    WHERE ts >= :as_of AND ts < :as_of + INTERVAL {{ horizon }} DAY AND ts < :observed_until
    GROUP BY customer_id
)
SELECT
    c.customer_id,
    coalesce(r.revenue, 0) AS revenue_next,
    CASE
        WHEN date_diff('day', :as_of, :observed_until) < {{ horizon }} THEN NULL
        {%- for cut in cut_points %}
        WHEN coalesce(r.revenue, 0) >= {{ cut }} THEN '{{ levels[loop.index0] }}'
        {%- endfor %}
        ELSE '{{ levels[-1] }}'
    END AS tier
FROM customers AS c
LEFT JOIN revenue AS r ON r.customer_id = c.customer_id
WHERE c.created_at IS NULL OR CAST(c.created_at AS DATE) < :as_of
