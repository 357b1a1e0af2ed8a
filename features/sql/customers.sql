-- Feature family: customer attributes (firmographics, profile answers, tenure).
-- One row per customer, as of :as_of. A customer created on or after :as_of does not exist yet.
-- Entities on their own clock (labels.outcome.kind days_to_win) are described as of their own start:
-- only the attributes known then and the weekday of the start (1 = Monday), and no tenure (days since the
-- start as of :as_of would tell the model how long the outcome was observed: a censoring proxy). Those
-- days are still read, as open_days, never as a model feature: a deal open 200 days cannot close within 30.
SELECT
    c.customer_id
    {%- if tenure %},
    date_diff('day', CAST(c.created_at AS DATE), :as_of) AS cust_tenure_days
    {%- else %},
    isodow(CAST(c.created_at AS DATE)) AS cust_start_weekday,
    date_diff('day', CAST(c.created_at AS DATE), :as_of) AS open_days
    {%- endif %}
    {%- for source, name in categorical %},
    CAST(c.{{ source }} AS VARCHAR) AS cust_{{ name }}
    {%- endfor %}
    {%- for source, name in numeric %},
    CAST(c.{{ source }} AS DOUBLE) AS cust_{{ name }}
    {%- endfor %}
FROM customers AS c
WHERE c.created_at IS NULL OR CAST(c.created_at AS DATE) < :as_of
