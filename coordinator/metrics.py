"""Prometheus metrics, one registry per app (so several apps can live in one test process)."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.commands = Counter("commandpost_commands", "Commands handled, by outcome",
                                ["command", "outcome"], registry=self.registry)
        self.events = Counter("commandpost_events_appended", "Events appended to the log", registry=self.registry)
        self.append_seconds = Histogram("commandpost_command_seconds", "Command latency: decide, append, apply",
                                        ["command"], registry=self.registry,
                                        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        self.head = Gauge("commandpost_log_head_seq", "Highest seq applied on this node", registry=self.registry)
        # Read off the node at each scrape: commands per batch = batched / batches (group commit).
        self.batches = Gauge("commandpost_append_batches", "Append transactions committed by this node",
                             registry=self.registry)
        self.batched = Gauge("commandpost_append_batched_commands", "Commands in those transactions",
                             registry=self.registry)
        self.bus_up = Gauge("commandpost_bus_up", "1 while this node's last hint reached the bus",
                            registry=self.registry)
