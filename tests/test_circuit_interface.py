"""The written circuit interface (neurosim/circuit.py): the default weight mapping, the checks
the registry makes, the derived [circuit] table and the memory refusal."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from neurosim.circuit import Circuit, Cost, check_circuit, check_fits, config_model, param
from neurosim.errors import ConfigError, NeurosimError


@dataclass(frozen=True)
class Params:
    g: float = param(0.5, "a conductance", gt=0)


@dataclass(frozen=True)
class Structure:
    sizes: tuple[int, ...] = (4, 3)


class Tiny(Circuit):
    name = "tiny"
    summary = "two layers, one dense projection"
    Params = Params
    Structure = Structure
    schedule = {"summed": ("start", -10)}
    configurable = ("sizes",)

    def build(self, structure, params, timed, *, dt_ms):  # noqa: ANN001, ANN201
        raise NotImplementedError("not built in these tests")

    def weight_shapes(self, structure: Structure) -> dict[str, tuple[int, ...]]:
        return {"W1": (structure.sizes[1], structure.sizes[0])}

    def cost(self, structure: Structure) -> Cost:
        n_pre, n_post = structure.sizes
        return Cost(neurons=n_pre + n_post, synapses=n_pre * n_post, values=3 * n_pre * n_post)


def test_named_weights_round_trip_through_run_args() -> None:
    circuit, structure = Tiny(), Structure()
    w = np.arange(12.0).reshape(3, 4)  # post × pre, not square
    values = circuit.weight_values(structure, {"W1": w})
    assert list(values) == ["W1.w"] and values["W1.w"].shape == (12,)
    back = circuit.weights_from_state(structure, values)
    np.testing.assert_array_equal(back["W1"], w)
    with pytest.raises(NeurosimError, match="shape"):
        circuit.weight_values(structure, {"W1": w.T})
    with pytest.raises(NeurosimError, match="no weight 'W9'"):
        circuit.weight_values(structure, {"W9": w})


def test_the_registry_check_names_what_is_missing() -> None:
    check_circuit(Tiny())

    class NoCost(Tiny):
        cost = Circuit.cost

    with pytest.raises(NeurosimError, match="cost"):
        check_circuit(NoCost())

    class Mutable(Tiny):
        Params = type("P", (), {})

    with pytest.raises(NeurosimError, match="frozen dataclass"):
        check_circuit(Mutable())


def test_the_circuit_table_is_derived_from_the_parameter_record() -> None:
    table = config_model(Tiny())
    assert table().g == 0.5 and table(sizes=[5, 2]).sizes == [5, 2]  # a TOML list
    with pytest.raises(Exception, match="greater than 0"):
        table(g=-1.0)
    with pytest.raises(Exception, match="Extra inputs"):
        table(h=1.0)


def test_a_build_that_cannot_fit_is_refused_with_the_estimate() -> None:
    small = check_fits(Tiny(), Structure((4, 3)), memory_bytes=10**6)
    assert small.synapses == 12
    with pytest.raises(ConfigError, match=r"will not fit: .*1,000,000,000 synapses"):
        check_fits(Tiny(), Structure((100_000, 10_000)), memory_bytes=2**30)


def test_importing_any_protocol_registers_the_circuits() -> None:
    """Protocols look circuits up by name, so a process that imports only a protocol (the virtual
    experiments under `neurosim predict`) must still find them."""
    import subprocess
    import sys

    code = (
        "import protocols.experiments\n"
        "from neurosim.registry import CIRCUITS\n"
        "print(sorted(CIRCUITS))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['hopfield', 'microcircuit', 'urbanczik-senn']"
