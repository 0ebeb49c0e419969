"""Plugin packages that ship with metacrm. Each module implements hooks from
engine.plugins.hookspecs; enable one by listing it under the `metacrm` entry-point group
(see docs/automation.md, "Plugins") or by calling engine.plugins.register(module)."""
