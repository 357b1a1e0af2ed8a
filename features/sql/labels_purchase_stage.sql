-- Outcome labels: the purchase stage each customer has reached by the end of the :horizon days from
-- :as_of, best level first: loyal (at least {{ loyal }} purchases within those days: buys regularly and
-- often), repeat (2 or more purchases in all by then), first-time (exactly 1), prospect (none yet).
-- A purchase is an invoice whose lines sum to a positive amount, as in rfm.sql; the lines of an invoice
-- before the snapshot are judged apart from its lines after it, so the stage at the snapshot is the one
-- rfm.sql sees then, and a return after the snapshot under the old invoice's id takes no purchase back.
-- One row per customer, as of :as_of; only transactions dated before :observed_until are seen.
-- Censoring rule: when the horizon is not fully observed by :observed_until nobody gets a tier (NULL).
WITH invoices AS (
    -- a line without an invoice id is an invoice of its own, one per customer and timestamp (rfm.sql)
    SELECT customer_id, coalesce(invoice_id, 'no invoice ' || CAST(ts AS VARCHAR)) AS invoice_id,
           ts >= :as_of AS after
    FROM transactions
    WHERE ts < :as_of + INTERVAL {{ horizon }} DAY AND ts < :observed_until
    GROUP BY 1, 2, 3
    HAVING sum(round(amount * 10000)) > 0   -- exact money in 1/10,000ths, as in rfm.sql
),
purchases AS (
    SELECT customer_id, count(*) AS purchases_by_end, count_if(after) AS purchases_next
    FROM invoices
    GROUP BY customer_id
)
SELECT
    c.customer_id,
    coalesce(p.purchases_next, 0) AS purchases_next,
    coalesce(p.purchases_by_end, 0) AS purchases_by_end,
    CASE
        WHEN date_diff('day', :as_of, :observed_until) < {{ horizon }} THEN NULL
        WHEN coalesce(p.purchases_next, 0) >= {{ loyal }} THEN '{{ levels[0] }}'
        WHEN coalesce(p.purchases_by_end, 0) >= 2 THEN '{{ levels[1] }}'
        WHEN coalesce(p.purchases_by_end, 0) = 1 THEN '{{ levels[2] }}'
        ELSE '{{ levels[3] }}'
    END AS tier
FROM customers AS c
LEFT JOIN purchases AS p ON p.customer_id = c.customer_id
WHERE c.created_at IS NULL OR CAST(c.created_at AS DATE) < :as_of
