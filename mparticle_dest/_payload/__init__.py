"""Stage 3: one walkerOS event → the mParticle event's JSON bytes and its batch key.

``plan`` is what each rule compiles to; ``builder`` runs validation, mapping, the
batch-level values (``envelope``), the mParticle event shape, mParticle's per-event
limits (``limits``) and encoding; ``fast`` generates a straight-line build function
per plain rule (its contract: ``fast.fast_spec``), handing anything unusual back to
the general build.
"""

from .builder import BatchKey, BuiltEvent, EventBuilder, Skipped

__all__ = ["BatchKey", "BuiltEvent", "EventBuilder", "Skipped"]
