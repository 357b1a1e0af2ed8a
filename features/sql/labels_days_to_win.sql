-- Outcome labels on each entity's own clock (a lead, an opportunity): calendar days from its start
-- (customers.created_at: created, engaged, first contact) to its win (outcomes.won_at), as ordered tiers.
-- One row per entity, as of :as_of, the evaluation date: outcomes dated on or after it are not seen yet.
-- Days are whole calendar days between the two dates (date - date), never day boundaries between times.
-- Levels: the first ones by thresholds (A <= 30, B <= 90, C <= 180 days to win), then "won later within
-- the horizon" (day <= horizon), then "lost, or not won within the horizon".
-- Censoring, per entity: an entity gets a tier only when every day of its horizon (days 0 .. horizon)
-- lies before :as_of; otherwise it is censored (tier NULL, no reason), whether it is still open or
-- already won or lost: labelling the early closes of a cohort whose slow ones are still open would
-- favour early closes (the newest cohorts would look like winners).
-- No label either (tier NULL, with a reason): no start date, a start on or after :as_of (not yet an
-- entity), a start before :observed_from (outcomes were not recorded yet), a win dated before the
-- start (the dates contradict each other: neither is trusted), and, when the features describe each entity
-- as of its start + entity_days, a win or loss within those first days (its features would show it).
WITH outcome AS (
    SELECT
        customer_id,
        min(CAST(won_at AS DATE)) FILTER (WHERE won_at < :as_of) AS won_on,
        min(CAST(lost_at AS DATE)) FILTER (WHERE lost_at < :as_of) AS lost_on
    FROM outcomes
    GROUP BY customer_id
),
entity AS (
    SELECT
        c.customer_id,
        CAST(c.created_at AS DATE) AS started_on,
        o.won_on - CAST(c.created_at AS DATE) AS days_to_win,
        o.lost_on - CAST(c.created_at AS DATE) AS days_to_loss,
        o.lost_on IS NOT NULL AS lost
    FROM customers AS c
    LEFT JOIN outcome AS o ON o.customer_id = c.customer_id
),
reason AS (
    SELECT
        *,
        CASE
            WHEN started_on IS NULL THEN 'no start date'
            WHEN started_on >= :as_of THEN 'started on or after the evaluation date'
            {%- if observed_from %}
            WHEN started_on < DATE '{{ observed_from }}' THEN 'started before outcomes were recorded'
            {%- endif %}
            WHEN days_to_win < 0 THEN 'won before the start'
            {%- if entity_days %}
            WHEN days_to_win < {{ entity_days }} OR days_to_loss < {{ entity_days }}
                THEN 'closed within its first {{ entity_days }} days (its features would show it)'
            {%- endif %}
        END AS unlabelled
    FROM entity
)
SELECT
    customer_id,
    started_on,
    days_to_win,
    days_to_loss,
    lost,
    unlabelled,
    CASE
        WHEN unlabelled IS NOT NULL OR :as_of - started_on <= {{ horizon }} THEN NULL
        {%- for t in thresholds %}
        WHEN days_to_win <= {{ t }} THEN '{{ levels[loop.index0] }}'
        {%- endfor %}
        WHEN days_to_win <= {{ horizon }} THEN '{{ levels[-2] }}'
        ELSE '{{ levels[-1] }}'
    END AS tier
FROM reason
ORDER BY customer_id
