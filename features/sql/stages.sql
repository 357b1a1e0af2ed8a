-- Feature family: stage history from a stage log (one row per stage an entity entered: customer_id,
-- stage, ts), e.g. an opportunity's pipeline.
-- One row per customer, as of :as_of: only stage rows dated before :as_of count. Entities on their own
-- clock (entity_days set: labels.outcome.kind days_to_win) are described as of their start
-- (customers.created_at) plus entity_days days, or :as_of when that is earlier.
-- stage_order numbers the configured stages, 1 = the first of the pipeline; a stage not in it counts as a
-- change but is never the furthest or the current position. Rows in time order (same time: lower position
-- first). A change is a row whose stage differs from the row before it; the first row enters the pipeline.
-- Days are whole calendar days between the rows' dates (date_diff on dates, as the other families count).
--   stage_changes            stage changes so far (0: still in the stage it entered first)
--   stage_days_since_change  days since the current stage was entered (the last change, or the entry)
--   stage_days_in_current    days spent in the current stage in all, earlier stints in it included
--   stage_furthest           the furthest position in stage_order reached
--   stage_current            the current stage's position in stage_order
{%- set as_of = "k.as_of" if entity_days is not none else ":as_of" %}
WITH
{%- if entity_days is not none %}
clock AS (
    SELECT customer_id, least(CAST(created_at AS DATE) + {{ entity_days }}, :as_of) AS as_of
    FROM customers
),
{%- endif %}
log AS (
    SELECT s.customer_id, s.stage, CAST(s.ts AS DATE) AS day, {{ as_of }} AS as_of,
           CASE s.stage{% for st in stage_order %} WHEN '{{ st }}' THEN {{ loop.index }}{% endfor %} END AS position,
           row_number() OVER (
               PARTITION BY s.customer_id
               ORDER BY s.ts,
                        CASE s.stage{% for st in stage_order %} WHEN '{{ st }}' THEN {{ loop.index }}{% endfor %} ELSE 0 END,
                        s.stage
           ) AS step
    FROM stages AS s
    {%- if entity_days is not none %}
    JOIN clock AS k ON k.customer_id = s.customer_id
    {%- endif %}
    WHERE s.ts < {{ as_of }} AND s.stage IS NOT NULL
),
stints AS (   -- each row with the stage before it and the day the next row starts (as_of for the last)
    SELECT customer_id, stage, position, day, as_of, step,
           lag(stage) OVER (PARTITION BY customer_id ORDER BY step) AS previous_stage,
           coalesce(lead(day) OVER (PARTITION BY customer_id ORDER BY step), as_of) AS until_day,
           count(*) OVER (PARTITION BY customer_id) AS steps
    FROM log
),
latest AS (
    SELECT customer_id, stage AS current_stage, position AS current_position FROM stints WHERE step = steps
),
per_customer AS (
    SELECT
        s.customer_id,
        count_if(s.previous_stage IS NOT NULL AND s.stage <> s.previous_stage) AS stage_changes,
        date_diff('day', max(s.day) FILTER (WHERE s.previous_stage IS NULL OR s.stage <> s.previous_stage),
                  max(s.as_of)) AS stage_days_since_change,
        sum(date_diff('day', s.day, s.until_day)) FILTER (WHERE s.stage = l.current_stage) AS stage_days_in_current,
        max(s.position) AS stage_furthest,
        max(l.current_position) AS stage_current
    FROM stints AS s
    JOIN latest AS l ON l.customer_id = s.customer_id
    GROUP BY s.customer_id
)
SELECT
    c.customer_id,
    coalesce(p.stage_changes, 0) AS stage_changes,
    p.stage_days_since_change,
    p.stage_days_in_current,
    p.stage_furthest,
    p.stage_current
FROM customers AS c
LEFT JOIN per_customer AS p ON p.customer_id = c.customer_id
