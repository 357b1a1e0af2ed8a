-- Survival labels: the customers and purchases of labels_days_to_next_purchase.sql, with its point in
-- time (the query below is that file's, rendered), but a customer whose horizon is not fully observed
-- is kept, censored, instead of dropped.
-- One row per customer: event (a purchase was seen), duration (the day of the first purchase, 0 = the
-- snapshot day; without one, the last day observed: days 0 .. duration had no purchase) and followup
-- (the days observed after the snapshot, the same for every customer of the snapshot).
SELECT
    customer_id,
    days_to_next IS NOT NULL AS event,
    coalesce(days_to_next, date_diff('day', :as_of, :observed_until) - 1) AS duration,
    date_diff('day', :as_of, :observed_until) - 1 AS followup
FROM (
{{ tier_labels }}
) AS labelled
ORDER BY customer_id
