-- Survival labels beside labels_days_to_win.sql, on each entity's own clock: the same entities, dates
-- and exclusions (an entity with a reason not to be labelled there is left out here too), but an entity
-- still open at :as_of is kept, censored, instead of dropped.
-- One row per entity: event (won before :as_of), duration (days from its start to its win; not won:
-- the last day observed, :as_of - start - 1, or the whole horizon when it was lost: it will never be won)
-- and followup (days observed since its start; a lost entity counts as followed for the whole horizon).
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
        o.lost_on IS NOT NULL AS lost
    FROM customers AS c
    LEFT JOIN outcome AS o ON o.customer_id = c.customer_id
)
SELECT
    customer_id,
    started_on,
    days_to_win IS NOT NULL AS event,
    CASE
        WHEN days_to_win IS NOT NULL THEN days_to_win
        WHEN lost THEN greatest({{ horizon }}, :as_of - started_on - 1)
        ELSE :as_of - started_on - 1
    END AS duration,
    CASE WHEN lost AND days_to_win IS NULL THEN greatest({{ horizon }}, :as_of - started_on - 1)
        ELSE :as_of - started_on - 1 END AS followup
FROM entity
WHERE started_on IS NOT NULL
    AND started_on < :as_of
    {%- if observed_from %}
    AND started_on >= DATE '{{ observed_from }}'
    {%- endif %}
    AND (days_to_win IS NULL OR days_to_win >= 0)
ORDER BY customer_id
