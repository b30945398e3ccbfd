"""Torch twin of the rate dendritic cortical microcircuit (Sacramento, Ponte Costa, Bengio & Senn,
NeurIPS 2018; DESIGN.md §4.2).

Written in the style of Norse (DESIGN.md §2): immutable parameter and state records plus pure
functions, float64 throughout, no Brian2. The Brian2 circuit (``circuits/microcircuit``) and this
twin share names, so the bridge can move weights and activities between them:

* layer sizes ``sizes = [n0, n1, ..., nN]``: layer 0 is the input (rates ``r0`` given, no
  dynamics), layers 1..N-1 are hidden three-compartment pyramidal cells (soma, basal, apical),
  layer N is the output (soma and basal, g_A = 0), nudged toward a target potential;
* weights, shape (post, pre), in a ``dict[str, Tensor]``: ``W{k}`` (k = 1..N; layer k <- layer
  k-1), ``B{k}`` (k = 1..N-1; hidden k apical <- rates of layer k+1), ``WPI{k}`` (hidden k apical
  <- interneurons of k, shape (n_k, n_{k+1})), ``WIP{k}`` (interneurons of k <- rates of hidden k,
  shape (n_{k+1}, n_k)); interneuron population k has n_{k+1} cells, each nudged by the somatic
  potential of its partner in layer k+1;
* activities: ``u{k}`` (somatic potential, k >= 1), ``vB{k}``, ``vA{k}`` (hidden only),
  ``uI{k}``, ``vI{k}`` (interneurons), and rates ``r{k}`` = φ(u_k) (``r0`` is the input),
  ``rI{k}`` = φ(uI_k).

Dynamics (time in ms, dimensionless potentials), with φ(u_0) := r0:

    hidden k:     du_k/dt  = -g_lk u_k + g_B (vB_k - u_k) + g_A (vA_k - u_k) [+ σ ξ]
                  vB_k = W_k φ(u_{k-1}),  vA_k = B_k φ(u_{k+1}) + WPI_k φ(uI_k)
    interneuron:  duI_k/dt = -g_lk uI_k + g_D (vI_k - uI_k) + g_som (u_{k+1} - uI_k)
                  vI_k = WIP_k φ(u_k)
    output N:     du_N/dt  = -g_lk u_N + g_B (vB_N - u_N) + g_som·nudge·(u_target - u_N)

``nudge`` is 0 (free) or 1 (nudged); any value in between scales the teaching conductance
(weak nudging, used for the backprop comparison). The target is a *potential*.

What is here (every public name is importable from ``models.dendritic_microcircuit``):

* :mod:`.network`: :class:`MicrocircuitParameters`, the rate functions (:func:`soft_relu`,
  :func:`logistic`, :func:`relu`, their derivatives, :func:`rate_function`,
  :func:`rate_derivative`) and gains (:func:`basal_gain`, :func:`interneuron_gain`,
  :func:`self_predicting_constant`); the weights: :func:`layer_sizes`, :func:`expected_shapes`,
  :func:`check_weights`, :func:`init_weights` (U(-1, 1) times a scale, reproducible from a
  seed), :func:`self_predicting_weights` (closed-form lateral weights), :func:`tied_feedback`;
  :class:`MicrocircuitState`, :func:`zero_state`, :func:`state_distance`, :func:`activities`;
* :mod:`.dynamics`: :func:`step` (one explicit Euler step), :func:`derivatives`,
  :func:`residual`; :func:`relax` (Euler to convergence) and :func:`fixed_point` (Euler, then
  Newton on the steady-state equations, to max|du/dt| < 1e-12): the reference a Brian2 run is
  compared to; :func:`two_pass`: the paper's steady-state approximation (one bottom-up and one
  top-down sweep);
* :mod:`.updates`: the induction terms :func:`forward_update`, :func:`ip_update`,
  :func:`pi_update`, all three at once (:func:`plasticity`), the learned top-down rule
  (:func:`top_down_update`), each from one definition of the rules' factors
  (:func:`~.updates.induction_factors`);
* :mod:`.learning`: learning in time as the circuit does it, low-pass filtered rules and the
  mini-batch sum of the circuit's batch mode: :class:`LearningState`, :func:`learning_start`,
  :func:`learning_step`, :func:`plastic_names`;
* :mod:`.reference`: :func:`backprop_reference` (error signals and gradients of the same
  architecture through autograd, for the losses :data:`LOSSES` of :func:`output_loss`); the
  backprop baseline itself is :mod:`models.backprop` with :func:`feedforward`'s layer function.
"""

from models.dendritic_microcircuit.dynamics import (
    Relaxation,
    TwoPass,
    derivatives,
    fixed_point,
    relax,
    residual,
    step,
    two_pass,
)
from models.dendritic_microcircuit.learning import (
    LearningState,
    learning_start,
    learning_step,
    plastic_names,
)
from models.dendritic_microcircuit.network import (
    DTYPE,
    MicrocircuitParameters,
    MicrocircuitState,
    Weights,
    activities,
    basal_gain,
    check_weights,
    expected_shapes,
    init_weights,
    interneuron_gain,
    layer_sizes,
    logistic,
    logistic_derivative,
    rate_derivative,
    rate_function,
    relu,
    relu_derivative,
    self_predicting_constant,
    self_predicting_weights,
    soft_relu,
    soft_relu_derivative,
    state_distance,
    tied_feedback,
    zero_state,
)
from models.dendritic_microcircuit.reference import (
    LOSSES,
    BackpropReference,
    backprop_reference,
    feedforward,
    output_loss,
)
from models.dendritic_microcircuit.updates import (
    forward_update,
    ip_update,
    pi_update,
    plasticity,
    top_down_update,
)

__all__ = [
    "DTYPE",
    "LOSSES",
    "BackpropReference",
    "LearningState",
    "MicrocircuitParameters",
    "MicrocircuitState",
    "Relaxation",
    "TwoPass",
    "Weights",
    "activities",
    "backprop_reference",
    "basal_gain",
    "check_weights",
    "derivatives",
    "expected_shapes",
    "feedforward",
    "fixed_point",
    "forward_update",
    "init_weights",
    "interneuron_gain",
    "ip_update",
    "layer_sizes",
    "learning_start",
    "learning_step",
    "logistic",
    "logistic_derivative",
    "output_loss",
    "pi_update",
    "plastic_names",
    "plasticity",
    "rate_derivative",
    "rate_function",
    "relax",
    "relu",
    "relu_derivative",
    "residual",
    "self_predicting_constant",
    "self_predicting_weights",
    "soft_relu",
    "soft_relu_derivative",
    "state_distance",
    "step",
    "tied_feedback",
    "top_down_update",
    "two_pass",
    "zero_state",
]
