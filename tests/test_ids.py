"""Record ids are UUIDv7: unique, time-ordered (index-friendly), valid UUIDs."""

import uuid

from metacrm.engine.storage.ids import new_id


def test_ids_are_unique_ordered_uuid7():
    ids = [new_id() for _ in range(20000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    parsed = uuid.UUID(ids[0])
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
