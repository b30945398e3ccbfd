"""Plasticity protocols: phases, nudging, learning rules, training loops, virtual experiments."""

from protocols import (
    compare,  # noqa: F401  (registers the protocol)
    consciousness_prior,  # noqa: F401  (registers the protocol)
    dendritic_prediction,  # noqa: F401  (registers the protocol)
    equilibrium_propagation,  # noqa: F401  (registers the protocol)
    feedback_cancellation,  # noqa: F401  (registers the protocol)
    icf,  # noqa: F401  (registers the protocol)
)
