-- Feature family: RFM (recency, frequency, monetary), returns and purchase rhythm.
-- One row per customer, as of :as_of: only transactions dated before :as_of count.
-- A purchase is an invoice whose lines sum to a positive amount; negative lines are returns.
-- Quintile scores (1 = worst, 5 = best) rank a customer against the buyers of the customer base:
-- the customers table, or, when a scoring run replaces it with a prospects file, the configured
-- customers table (the template's `population`); a scored buyer outside the base ranks as if it joined
-- it. A customer scored alone gets the same scores as in the full run, and event rows of unknown
-- customers change nobody's. No purchase scores 0.
-- rfm_segment names the classic R x F grid cells.
-- Money is added in whole 1/10,000ths of the currency unit (integer-valued doubles): every partial sum
-- is an integer below 2^53, so totals, ranks and the "sums to a positive amount" test are exact and
-- never depend on the order in which the engine adds lines (up to 900 billion per customer).
WITH tx AS (
    -- a line without an invoice id is an invoice of its own, one per customer and timestamp
    SELECT customer_id, coalesce(invoice_id, 'no invoice ' || CAST(ts AS VARCHAR)) AS invoice_id,
           round(amount * 10000) AS amount,   -- 1/10,000ths, see above
           date_diff('day', CAST(ts AS DATE), :as_of) AS age_days
    FROM transactions
    WHERE ts < :as_of
),
invoices AS (   -- one row per invoice: its day, its total and its return lines
    SELECT customer_id, invoice_id, max(age_days) AS age_days, sum(amount) AS amount,
           count(*) AS lines,
           count_if(amount < 0) AS return_lines,
           sum(amount) FILTER (WHERE amount < 0) AS return_amount
    FROM tx
    GROUP BY customer_id, invoice_id
),
purchase_gaps AS (   -- days between consecutive purchases; same-day purchases give 0 and are skipped below
    SELECT customer_id,
           lag(age_days) OVER (PARTITION BY customer_id ORDER BY age_days DESC) - age_days AS gap_days
    FROM invoices
    WHERE amount > 0
),
rhythm AS (   -- gaps between distinct purchase days
    SELECT customer_id,
           avg(gap_days) AS rfm_gap_mean_days,
           -- sample standard deviation from exact integer sums: one rounding, the same in every run
           CASE WHEN count(*) > 1 THEN sqrt(
               (count(*) * sum(gap_days * gap_days) - sum(gap_days) * sum(gap_days)) / (count(*) * (count(*) - 1))
           ) END AS rfm_gap_std_days
    FROM purchase_gaps
    WHERE gap_days > 0
    GROUP BY customer_id
),
customer_invoices AS (   -- per customer first, joined to all customers below
    SELECT customer_id,
           min(age_days) FILTER (WHERE amount > 0) AS rfm_recency_days,
           max(age_days) FILTER (WHERE amount > 0) AS rfm_first_purchase_days,
           count_if(amount > 0) AS rfm_frequency,
           sum(amount) FILTER (WHERE amount > 0) AS rfm_purchase_amount,
           sum(amount) AS net_amount,   -- every line, returns included
           sum(lines) AS rfm_lines,
           sum(return_lines) AS rfm_return_lines,
           -sum(return_amount) AS rfm_return_amount
           {%- for w in windows %},
           count_if(amount > 0 AND age_days <= {{ w }}) AS rfm_frequency_{{ w }}d,
           sum(amount) FILTER (WHERE amount > 0 AND age_days <= {{ w }}) AS rfm_amount_{{ w }}d
           {%- endfor %},
           count_if(amount > 0 AND age_days > 30 AND age_days <= 60) AS rfm_frequency_prev_30d
    FROM invoices
    GROUP BY customer_id
),
buyers AS (   -- the customer base's buyers (base 1) and the scored buyers outside it (base 0)
    SELECT customer_id, rfm_recency_days, rfm_frequency, net_amount,
           CASE WHEN customer_id IN (SELECT customer_id FROM {{ population }}) THEN 1 ELSE 0 END AS base
    FROM customer_invoices
    WHERE rfm_frequency > 0
      AND (customer_id IN (SELECT customer_id FROM {{ population }}) OR customer_id IN (SELECT customer_id FROM customers))
),
below AS (   -- per buyer and axis: how many of the base's buyers rank strictly below it (ties excluded)
    SELECT customer_id, sum(base) OVER () - base AS others,
        sum(base) OVER (ORDER BY rfm_recency_days DESC) - sum(base) OVER (PARTITION BY rfm_recency_days) AS r_below,
        sum(base) OVER (ORDER BY rfm_frequency) - sum(base) OVER (PARTITION BY rfm_frequency) AS f_below,
        sum(base) OVER (ORDER BY net_amount) - sum(base) OVER (PARTITION BY net_amount) AS m_below
    FROM buyers
),
scores AS (   -- quintiles: a base buyer's percent_rank among the base's buyers; one outside as if it joined them
    SELECT customer_id,
        least(5, 1 + floor(5 * coalesce(r_below / nullif(others, 0), 0))) AS rfm_r_score,
        least(5, 1 + floor(5 * coalesce(f_below / nullif(others, 0), 0))) AS rfm_f_score,
        least(5, 1 + floor(5 * coalesce(m_below / nullif(others, 0), 0))) AS rfm_m_score
    FROM below
),
breadth AS (   -- reads the lines again: cheaper than keeping tx in memory for a second pass
    SELECT customer_id,
           count(DISTINCT product_id) AS rfm_distinct_products,
           count(DISTINCT channel) AS rfm_distinct_channels
    FROM transactions
    WHERE ts < :as_of AND amount > 0
    GROUP BY customer_id
),
scored AS (
SELECT
    c.customer_id,
    b.rfm_recency_days,
    b.rfm_first_purchase_days,
    coalesce(b.rfm_frequency, 0) AS rfm_frequency,
    coalesce(b.rfm_lines, 0) AS rfm_lines,   -- every transaction line, purchases and returns
    coalesce(b.net_amount, 0) / 10000 AS rfm_monetary,
    b.rfm_purchase_amount / 10000 / nullif(b.rfm_frequency, 0) AS rfm_monetary_div_frequency,   -- average purchase
    coalesce(b.rfm_return_lines, 0) AS rfm_return_lines,
    coalesce(b.rfm_return_amount, 0) / 10000 AS rfm_return_amount,
    h.rfm_gap_mean_days,
    h.rfm_gap_std_days,
    coalesce(x.rfm_distinct_products, 0) AS rfm_distinct_products,
    coalesce(x.rfm_distinct_channels, 0) AS rfm_distinct_channels
    {%- for w in windows %},
    coalesce(b.rfm_frequency_{{ w }}d, 0) AS rfm_frequency_{{ w }}d,
    coalesce(b.rfm_amount_{{ w }}d, 0) / 10000 AS rfm_amount_{{ w }}d
    {%- endfor %},
    coalesce(b.rfm_frequency_30d, 0) - coalesce(b.rfm_frequency_prev_30d, 0) AS rfm_frequency_trend_30d,
    coalesce(s.rfm_r_score, 0) AS rfm_r_score,
    coalesce(s.rfm_f_score, 0) AS rfm_f_score,
    coalesce(s.rfm_m_score, 0) AS rfm_m_score
FROM customers AS c
LEFT JOIN customer_invoices AS b ON b.customer_id = c.customer_id
LEFT JOIN scores AS s ON s.customer_id = c.customer_id
LEFT JOIN rhythm AS h ON h.customer_id = c.customer_id
LEFT JOIN breadth AS x ON x.customer_id = c.customer_id
)
SELECT *,
    rfm_r_score + rfm_f_score + rfm_m_score AS rfm_score,
    CASE
        WHEN rfm_frequency = 0 THEN 'no_purchase'
        WHEN rfm_r_score >= 4 AND rfm_f_score >= 4 THEN 'champions'
        WHEN rfm_r_score >= 3 AND rfm_f_score >= 3 THEN 'loyal'
        WHEN rfm_r_score >= 4 AND rfm_f_score >= 2 THEN 'potential_loyalist'
        WHEN rfm_r_score = 5 AND rfm_f_score = 1 THEN 'new_customers'
        WHEN rfm_r_score = 4 AND rfm_f_score = 1 THEN 'promising'
        WHEN rfm_r_score = 3 THEN 'about_to_sleep'
        WHEN rfm_r_score <= 2 AND rfm_f_score = 5 THEN 'cannot_lose_them'
        WHEN rfm_r_score <= 2 AND rfm_f_score >= 3 THEN 'at_risk'
        WHEN rfm_r_score = 2 THEN 'hibernating'
        ELSE 'lost'
    END AS rfm_segment
FROM scored
