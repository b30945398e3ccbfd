"""Plasticity protocols: phases, nudging, learning rules, training loops, virtual experiments."""

from protocols import (
    dendritic_prediction,  # noqa: F401  (registers the protocol)
    equilibrium_propagation,  # noqa: F401  (registers the protocol)
    feedback_cancellation,  # noqa: F401  (registers the protocol)
)
