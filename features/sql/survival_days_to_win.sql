-- Survival labels on each entity's own clock: the entities, dates and exclusions of labels_days_to_win.sql
-- (the query below is that file's, rendered; an entity with a reason not to be labelled there is left out
-- here too), but an entity still open at :as_of is kept, censored, instead of dropped.
-- One row per entity: event (won before :as_of), duration (days from its start to its win; not won:
-- the last day observed, :as_of - start - 1, or the whole horizon when it was lost: it will never be won)
-- and followup (days observed since its start: its tier is known once followup reaches the horizon).
SELECT
    customer_id,
    started_on,
    days_to_win IS NOT NULL AS event,
    CASE
        WHEN days_to_win IS NOT NULL THEN days_to_win
        WHEN lost THEN greatest({{ horizon }}, :as_of - started_on - 1)
        ELSE :as_of - started_on - 1
    END AS duration,
    :as_of - started_on - 1 AS followup
FROM (
{{ tier_labels }}
) AS labelled
WHERE unlabelled IS NULL
ORDER BY customer_id
