"""The metacrm runtime: everything generated from a compiled metamodel.Model.

Subpackages, one idea each: expressions (the formula language), storage (tables and
schema evolution), records (the record engine), cli.
"""
