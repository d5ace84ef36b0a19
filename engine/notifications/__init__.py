"""Notifications: what the counts cross, decided once and delivered as signed webhooks
(docs/notifications.md).

What decides. Counting decides what events cause, in the same atomic step as the counts
(engine/count_events/notifications.lua, a part of the counting script); ``sweep`` (with
``sweep.lua``) decides on a worker's timer what the clock causes: a stall, a day's end, a
window's abandon status changed by time passing. Both append to the campaign's outbox and
name it in the due set; ``outbox`` is the same append for writers outside a counting step.

What delivers. ``notifier``: the ``isales-stats notifier`` process, sharing the due set with
other notifiers by leased shards, and delivering each campaign's outbox to each subscription
covering it in order, retried, then dead-lettered; ``delivery``: one signed HTTP delivery to a
checked address; ``metrics``: what the notifier's metrics port exports. ``subscriptions``:
the subscriptions in Redis, written by the API (api/routes/webhooks.py), read by the notifier.
The rules without Redis or network (the address policy, backoff, the body) are in
isales_stats/core/webhooks.py, the kinds and the outbox's fields in
isales_stats/core/notification_kinds.py.

Where the keys are. isales_stats/core/keys.py (``KeyLayout``) spells them all: a campaign's
``campaign_outbox``, ``campaign_outbox_cursors``, ``campaign_outbox_retries`` and
``campaign_notified``; the shared ``outbox_due``, ``outbox_wake_channel``,
``webhook_subscriptions``, ``webhook_dead_letters``, ``notifier_lease`` and
``notifier_members``.
"""
