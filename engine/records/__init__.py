"""The record engine: create, read, update, delete, list and bulk-write records of any object.

Every channel (CLI, API, UI, automations, imports) writes through `RecordService`, so
coercion, validation, computed fields, integrity, history and concurrency checks are
applied the same way everywhere.
"""
