"""Automation: rules that react to writes, time and schedules; a durable outbox; the worker.

Rules are metadata (the `automations` key of an object), compiled with the model.
Actions that change records run inside the triggering write's transaction; effects
that leave the database (email, webhooks, notifications) go to the outbox in that
same transaction and are delivered after commit by `metacrm worker`.

The record engine does not import this package: `hooks.py` implements the record lifecycle
hooks (engine/plugins/hookspecs.py) and each Runtime registers it as a plugin. Pools, and
privacy requests with the erasure of every copy of a person's values, live here too: they
write through the RecordService and own automation's tables.
"""
