"""Your own neuron model in a layered circuit, trained by Equilibrium Propagation from Python.

    python examples/custom_neuron_circuit.py

The circuit is the layered Hopfield circuit of ``circuits/hopfield.py`` with another neuron:
a smooth sigmoid rate ρ(s) = 1/(1 + e^(−4(s − 0.5))) instead of the hard sigmoid clip(s, 0, 1),
and its own step, one Euler step of ds/dt = −s + ρ'(s)·(input) with ρ' = 4ρ(1 − ρ), written in
Brian2's equations. It is registered under its own name and the equilibrium-propagation protocol
trains it through the circuit interface: one build, compiled once and re-run for every epoch.
"""

from __future__ import annotations

import neurosim
from circuits.hopfield import HopfieldCircuit, Neuron
from neurosim.registry import register_circuit

#: ρ of a state variable ``{s}``
SIGMOID = "1/(1 + exp(-4*({s} - 0.5)))"


class SigmoidHopfield(HopfieldCircuit):
    """Layered Hopfield circuit of smooth-sigmoid units."""

    name = "sigmoid-hopfield"
    summary = "Layered Hopfield circuit of smooth-sigmoid units (examples/custom_neuron_circuit.py)"
    neuron = Neuron(
        rate=SIGMOID,  # r = ρ(s), every step before the sums
        settled=SIGMOID,  # ρ of the state a step has just made (what the learning rules read)
        # {drive}: the summed input W ρ(s_below) + Wᵀ ρ(s_above) + b (+ β(d − ρ) at the output)
        step="s + (dt/tau)*(-s + 4*r*(1 - r)*({drive})){noise}",
        sensitive=(-1.0, 2.0),  # where ρ' = 4ρ(1 − ρ) is at least 1 % of its maximum
    )


def main() -> None:
    register_circuit(SigmoidHopfield())
    result = neurosim.run(
        "equilibrium-propagation",
        circuit="sigmoid-hopfield",
        dataset="digits",
        epochs=2,
        # no step-by-step trace of one example: that would be a second, one-example build
        protocol={"n_train": 200, "n_test": 100, "traces": False},
        progress=False,
    )
    m = result.metrics
    print(f"test accuracy before training and after each epoch: {m['history']['test_accuracy']}")
    # one build serves every epoch; it is compiled on the first run and then found in the cache
    print(f"builds: {len(m['builds'])} for {m['epochs']} epochs ({m['compilations']} compiled now)")


if __name__ == "__main__":
    main()
