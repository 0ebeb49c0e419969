"""Security, enforced in the engine for every channel: what an actor may do with records (access:
role rights, scopes, hidden fields; owners: who may give records to whom), record sharing, and
authentication (passwords, tokens, sessions). Below the record engine, above identity; it knows
nothing of automation (pools reach the read scope through the `metacrm_read_grants` hook)."""
