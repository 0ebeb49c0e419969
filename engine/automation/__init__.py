"""Automation: rules that react to writes, time and schedules; a durable outbox; the worker.

Rules are metadata (the `automations` key of an object), compiled with the model.
Actions that change records run inside the triggering write's transaction; effects
that leave the database (email, webhooks, notifications) go to the outbox in that
same transaction and are delivered after commit by `metacrm worker`.
"""
