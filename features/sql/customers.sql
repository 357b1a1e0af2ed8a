-- Feature family: customer attributes (firmographics, profile answers, tenure).
-- One row per customer, as of :as_of. A customer created on or after :as_of does not exist yet.
SELECT
    c.customer_id,
    date_diff('day', CAST(c.created_at AS DATE), :as_of) AS cust_tenure_days
    {%- for source, name in categorical %},
    CAST(c.{{ source }} AS VARCHAR) AS cust_{{ name }}
    {%- endfor %}
    {%- for source, name in numeric %},
    CAST(c.{{ source }} AS DOUBLE) AS cust_{{ name }}
    {%- endfor %}
FROM customers AS c
WHERE c.created_at IS NULL OR CAST(c.created_at AS DATE) < :as_of
