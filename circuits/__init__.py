"""Circuit builders: each returns the Brian2 groups, synapses and monitors of one circuit."""

from circuits import hopfield, microcircuit, urbanczik_senn  # noqa: F401  (registers the circuits)
