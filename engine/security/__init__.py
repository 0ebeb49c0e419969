"""Identity (users, groups, roles) and, later, permissions: enforced in the engine, for every channel."""
