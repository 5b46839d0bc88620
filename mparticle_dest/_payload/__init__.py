"""Stage 3: one walkerOS event → the mParticle event's JSON bytes and its batch key.

``builder`` runs validation, mapping, the mParticle event shape, limits and encoding;
``fast`` generates a straight-line build function per plain rule, handing anything
unusual back to the general builder.
"""

from .builder import BatchKey, BuiltEvent, EventBuilder, Skipped

__all__ = ["BatchKey", "BuiltEvent", "EventBuilder", "Skipped"]
