"""The core: the product's values, its ports (what it needs from the outside, as Protocols), and
every decision (authorization, idempotent publish, problems, the order of a publish's steps).

It imports nothing but itself, the CloudEvents layer (shared/cloudevents/) and the subscriber's
reading contract (shared/subscriber.py), and loads no SDK: its tests need no socket
(docs/architecture.md)."""
