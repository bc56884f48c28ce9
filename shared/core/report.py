"""One report per publish: what happened, filled in by the steps as they go, and rendered once at
the end into the request's log line, its span's attributes and the metrics (shared/core/
telemetry.py). A batch element has a report of its own, rendered into its span; what its steps
counted (registry lookups, sends) is the request's too.

Never the token, ``data`` or ``alternativesubject``: nothing here can hold them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class PublishReport:
    """What one publish (a request, or an element of a batch) did."""

    trace_id: str
    method: str = "POST"
    path: str = "/events"
    publisher: str = "-"
    #: structured, binary or batch; "-" until the content type is read.
    mode: str = "-"
    event_id: str = "-"
    source: str = "-"
    type: str = "-"
    resource: str = "-"
    #: How the rules were found: hit, miss or stale (see shared/core/registry_cache.py).
    authz: str = "-"
    #: permit, deny, unknown (resource not registered), admin (scope), limited (429) or error.
    decision: str = "-"
    #: The identity's record: new, replay, conflict, in-flight, unavailable ("-": not looked).
    dedup: str = "-"
    problem: str = "-"
    note: str = ""
    status: int = 0
    replayed: bool = False
    claim_checked: bool = False
    #: Events in the batch, for a batch request.
    batch_size: int | None = None
    #: A dry run (``?validateOnly=true``): every check, nothing written.
    validate_only: bool = False
    #: How each registry lookup of the request was answered (hit, miss, stale, error, limited).
    lookups: list[str] = field(default_factory=list)
    #: Each send of the request: how long the answer waited for it, and how it ended.
    sends: list[tuple[float, str]] = field(default_factory=list)

    def event(self, event_id: str, source: str, event_type: str, resource: str) -> None:
        """The event read (ids are unbounded: cut to 128 characters here)."""
        self.event_id, self.source, self.type = event_id[:128], source, event_type
        self.resource = resource

    def __str__(self) -> str:  # formatted only when the log line is emitted
        return self.log_line()

    def log_line(self) -> str:
        """The request's log line. Every value that comes from a caller (even a signed claim)
        is written with repr(): quoted and escaped, so no newline or quote in it can forge a log
        line or a field."""
        note = f" note={self.note!r}" if self.note else ""
        dry = "validate_only=true " if self.validate_only else ""
        return (
            f"{dry}publisher={self.publisher!r} mode={self.mode} resource={self.resource!r} "
            f"id={self.event_id!r} "
            f"authz={self.authz} decision={self.decision} dedup={self.dedup} "
            f"problem={self.problem} "
            f"trace={self.trace_id}{note}"
        )
