-- Outcome labels: days from :as_of until the customer's next purchase, as ordered tiers.
-- One row per customer, as of :as_of; only purchases dated before :observed_until are seen.
-- Levels: the first ones by thresholds (e.g. A <= 30, B <= 90, C <= 180 days), then "later within
-- the horizon" (day <= horizon), then "no purchase within the horizon".
-- Censoring rule: tiers exist only once every day up to and including day `horizon` has been observed
-- (observed_until more than `horizon` days on); before that every customer gets no tier (NULL), the
-- early buyers too: labelling them alone would favour early purchases.
WITH purchases AS (
    -- a line without an invoice id is an invoice of its own, one per customer and timestamp (rfm.sql)
    SELECT customer_id, coalesce(invoice_id, 'no invoice ' || CAST(ts AS VARCHAR)) AS invoice_id, min(ts) AS ts
    FROM transactions
    WHERE ts >= :as_of AND ts < :observed_until
    GROUP BY 1, 2
    HAVING sum(round(amount * 10000)) > 0   -- exact money in 1/10,000ths, as in rfm.sql
),
next_purchase AS (
    SELECT customer_id, date_diff('day', :as_of, CAST(min(ts) AS DATE)) AS days_to_next
    FROM purchases
    GROUP BY customer_id
)
SELECT
    c.customer_id,
    n.days_to_next,
    CASE
        WHEN date_diff('day', :as_of, :observed_until) <= {{ horizon }} THEN NULL
        {%- for t in thresholds %}
        WHEN n.days_to_next <= {{ t }} THEN '{{ levels[loop.index0] }}'
        {%- endfor %}
        WHEN n.days_to_next <= {{ horizon }} THEN '{{ levels[-2] }}'
        ELSE '{{ levels[-1] }}'
    END AS tier
FROM customers AS c
LEFT JOIN next_purchase AS n ON n.customer_id = c.customer_id
WHERE c.created_at IS NULL OR CAST(c.created_at AS DATE) < :as_of
