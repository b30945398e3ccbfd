"""Parameter records of the built-in models, one frozen dataclass per model (DESIGN.md §2).

Each record is the single source of a model's physical parameters: the Brian2 circuit in
``circuits/``, its torch twin in ``models/`` and the ``[circuit]`` configuration table (derived by
:func:`neurosim.circuit.config_model`) all read the same record, so a default is written once.
They live in ``neurosim`` because both ``circuits/`` and ``models/`` may import it and neither may
import the other.
"""
