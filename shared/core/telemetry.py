"""What the pipeline asks of telemetry, and the implementation for when nothing records.

``Telemetry`` is a Protocol with two implementations, neither a subclass of the other:

- ``NoTelemetry`` (here), when no OpenTelemetry SDK is configured: nothing is recorded, and it
  costs nothing measurable. It still gives every publish its W3C ids, which problems quote and
  queued events carry;
- ``OpenTelemetry`` (shared/app/telemetry.py), through the OpenTelemetry API, when an SDK is (in
  Azure, the Functions Python worker configures Azure Monitor's): a ``publish`` span per request,
  a ``publish event`` span per element of a batch, a child span per step that talks to the
  outside (a registry lookup that memory could not answer, the record's claim, the send), and
  metrics.

A publish's attributes and metrics come from its report (shared/core/report.py), rendered once
when it ends (``finished``): the steps only open a span around what they send out. What they
answer from memory (the token with the issuer's cached keys, the rules from the cache) has no
span: it is an attribute of the publish span (``events.cache.outcome``, ``events.decision``).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Literal, Protocol

from shared.core.report import PublishReport
from shared.core.tracecontext import Parent, TraceIds, new_ids

#: A step's span kind: a call to another service (internal), or a message sent (producer).
StepKind = Literal["internal", "producer"]


class PublishSpan(Protocol):
    """The span of one publish (a request, or an element of a batch): its ids, and where its
    attributes go (nowhere, without an SDK)."""

    ids: TraceIds

    @property
    def recording(self) -> bool: ...

    def set(self, name: str, value: Any) -> None: ...

    def fail(self, error_type: str) -> None: ...


class StepSpan(Protocol):
    def set_attribute(self, key: str, value: Any) -> None: ...


class Telemetry(Protocol):
    #: Whether anything is recorded: callers may skip building attributes that nothing would.
    enabled: bool

    def publish(
        self, name: str, parent: Parent | None, attributes: Mapping[str, Any] | None = None
    ) -> AbstractContextManager[PublishSpan]:
        """The span of a request's publish, a child of ``parent`` (or the root of a new trace)."""
        ...

    def element(
        self, within: PublishSpan, attributes: Mapping[str, Any] | None = None
    ) -> AbstractContextManager[PublishSpan]:
        """The span of one element of a batch, a child of the batch's ``publish`` span."""
        ...

    def step(
        self,
        name: str,
        attributes: Mapping[str, Any] | None = None,
        kind: StepKind = "internal",
    ) -> AbstractContextManager[StepSpan | None]:
        """A child span of the current one, for a step that talks to the outside."""
        ...

    def finished(self, report: PublishReport, span: PublishSpan) -> None:
        """A request's publish ended: its span's attributes and the metrics, from its report."""
        ...

    def element_finished(self, report: PublishReport, span: PublishSpan) -> None:
        """An element of a batch ended: its span's attributes, from its report."""
        ...


class IdsOnly:
    """A span that nothing records: its ids, and nowhere for attributes to go."""

    __slots__ = ("ids",)
    recording = False

    def __init__(self, ids: TraceIds) -> None:
        self.ids = ids

    def set(self, name: str, value: Any) -> None:
        pass

    def fail(self, error_type: str) -> None:
        pass


class _Given:
    """A context manager that gives ``span`` and does nothing else (cheaper than a generator
    one: NoTelemetry makes one per publish)."""

    __slots__ = ("span",)

    def __init__(self, span: PublishSpan) -> None:
        self.span = span

    def __enter__(self) -> PublishSpan:
        return self.span

    def __exit__(self, *_: object) -> None:
        return None


_NOTHING: AbstractContextManager[None] = nullcontext()


class NoTelemetry:
    """No OpenTelemetry SDK configured: ids only, nothing recorded."""

    enabled = False

    def publish(
        self, name: str, parent: Parent | None, attributes: Mapping[str, Any] | None = None
    ) -> AbstractContextManager[PublishSpan]:
        return _Given(IdsOnly(new_ids(parent)))

    def element(
        self, within: PublishSpan, attributes: Mapping[str, Any] | None = None
    ) -> AbstractContextManager[PublishSpan]:
        return _Given(IdsOnly(new_ids(within.ids.as_parent())))

    def step(
        self,
        name: str,
        attributes: Mapping[str, Any] | None = None,
        kind: StepKind = "internal",
    ) -> AbstractContextManager[StepSpan | None]:
        return _NOTHING

    def finished(self, report: PublishReport, span: PublishSpan) -> None:
        pass

    def element_finished(self, report: PublishReport, span: PublishSpan) -> None:
        pass
