-- Survival labels beside labels_days_to_next_purchase.sql: the same customers and the same purchases
-- (point in time: the customer exists before :as_of, purchases dated :as_of <= ts < :observed_until,
-- net positive invoices), but a customer whose horizon is not fully observed is kept, censored.
-- One row per customer: event (a purchase was seen), duration (the day of the first purchase, 0 = the
-- snapshot day; without one, the last day observed: days 0 .. duration had no purchase) and followup
-- (the days observed after the snapshot, the same for every customer of the snapshot).
WITH purchases AS (
    SELECT customer_id, invoice_id, min(ts) AS ts
    FROM transactions
    WHERE ts >= :as_of AND ts < :observed_until
    GROUP BY customer_id, invoice_id
    HAVING sum(round(amount * 10000)) > 0   -- exact money in 1/10,000ths, as in rfm.sql
),
next_purchase AS (
    SELECT customer_id, date_diff('day', :as_of, CAST(min(ts) AS DATE)) AS days_to_next
    FROM purchases
    GROUP BY customer_id
)
SELECT
    c.customer_id,
    n.days_to_next IS NOT NULL AS event,
    coalesce(n.days_to_next, date_diff('day', :as_of, :observed_until) - 1) AS duration,
    date_diff('day', :as_of, :observed_until) - 1 AS followup
FROM customers AS c
LEFT JOIN next_purchase AS n ON n.customer_id = c.customer_id
WHERE c.created_at IS NULL OR CAST(c.created_at AS DATE) < :as_of
ORDER BY c.customer_id
