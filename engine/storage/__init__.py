"""Storage: real tables generated from the model, and safe schema evolution.

Layers, each knowing only the one below: `columns` (field type -> SQL type),
`tables` (model -> SQLAlchemy Tables), `planner` (old model vs new model -> Plan),
`migrator` (Plan -> checked, atomic DDL with Alembic operations). Only `database`
knows about dialect quirks.
"""
