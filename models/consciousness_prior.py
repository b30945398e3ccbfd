"""The Consciousness Prior as a trainable bottleneck (Bengio 2017; DESIGN.md §4.5, issue 5).

The world is :mod:`neurosim.latent_world`: n latent variables, each driven by ``n_parents`` others
through z_{t+1,i} = tanh(W_i · z_{t,pa(i)} + b_i) + noise, seen only through x_t = M z_t + noise.
The model, all in torch (float32, CPU), no Brian2:

* **Encoder** F: x_t → h_t, a set of n (key, value) slots. Values are a linear map of x_t (or a
  one-hidden-layer MLP, ``encoder_hidden`` > 0); keys are learned embeddings, one per slot, that
  name the slot (input-independent: which variable a slot holds does not change over time, as the
  module keys of Recurrent Independent Mechanisms). A linear mixture is only identifiable up to an
  invertible map, so the slot values get an **auxiliary latent-regression loss**
  ``aux_weight`` · ‖v(x_t) − z_t‖² on the training data (the variables are observed while
  training, never at test). Slots are then matched to variables on held-out data without using
  this (:func:`match_slots`: greedy one-to-one matching on |correlation|), and every measure below
  goes through that matching. With ``aux_weight`` = 0 the slots are found, not given: two terms
  (:func:`spread_terms`: a variance hinge and an off-diagonal covariance penalty) keep the slots
  alive and distinct, the prediction loss and the bottleneck are left to pick their basis, and
  after matching each slot is put into its variable's units by a line fitted on held-out data
  (:func:`calibrate`, for the measures only).
* **Attention bottleneck** C: the query for variable i is slot i's key; scores
  s_ij = (W_q key_i)·(W_k key_j)/√d over all n slots (slot i itself included). Training selects k
  slots per query and per sample by **Gumbel top-k** (Gumbel noise on the scores, k largest) with a
  **straight-through** gradient: the forward pass uses the hard k-hot mask, the backward pass the
  gradient of the relaxed k-hot of Xie & Ermon 2019 (k successive softmaxes at temperature τ,
  each damped by log(1 − previous)). At evaluation the k largest scores, no noise. c_t = the k
  selected (key, value) pairs.
* **Verifier**: predicts the queried slot's next value v_i(x_{t+1}) (target detached: the model
  predicts what it will observe) from c_t alone: one small tanh MLP per query key, reading the
  selected values in their slots' places (unselected slots are zero). Loss: mean squared error.
* **Diversity term**: ``entropy_weight`` · (log n − H(ā)), with ā the attention distribution
  softmax(s_i) averaged over queries. It is 0 when the queries spread over all slots and log n
  when they all attend the same slot, so attention cannot collapse onto a few easily predictable
  or broadly informative slots (high-variance hubs that correlate with many variables).
* **Baseline**: the same encoder, auxiliary loss and verifier heads, without the bottleneck (each
  head reads all n slots).

Measures: :func:`parent_precision` (share of the selected slots that hold true parents of the
queried variable, with chance = E|pa(i)| / n, the precision of k slots drawn uniformly from the n
candidates); :func:`prediction_errors` and :func:`shift_test` (normalised mean squared error of the
next value of each queried variable, in distribution and when the queried variable's non-parents
are shifted at time t, :func:`neurosim.latent_world.shift`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from neurosim import latent_world as lw


@dataclass(frozen=True)
class ModelSpec:
    """Sizes and the switch between bottleneck and baseline."""

    n_slots: int
    obs_dim: int
    k: int = 3
    key_dim: int = 16
    hidden: int = 32
    encoder_hidden: int = 0
    bottleneck: bool = True

    def __post_init__(self) -> None:
        for name in ("n_slots", "obs_dim", "k", "key_dim", "hidden"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.encoder_hidden, int) or self.encoder_hidden < 0:
            raise ValueError(f"encoder_hidden must be an integer ≥ 0, got {self.encoder_hidden!r}")
        if self.k > self.n_slots:
            raise ValueError(f"k ({self.k}) cannot exceed the number of slots ({self.n_slots})")


# ------------------------------------------------------------------------------ top-k selection
def topk_mask(scores: Tensor, k: int) -> Tensor:
    """Hard k-hot mask of the k largest entries along the last axis (ties: lowest index)."""
    if not 1 <= k <= scores.shape[-1]:
        raise ValueError(f"k must lie in 1..{scores.shape[-1]}, got {k}")
    idx = scores.topk(k, dim=-1).indices
    return torch.zeros_like(scores).scatter_(-1, idx, 1.0)


def relaxed_topk(scores: Tensor, k: int, tau: float) -> Tensor:
    """Relaxed k-hot (Xie & Ermon 2019): k softmaxes at temperature ``tau``, each over the
    scores damped by log(1 − p) of the previous one; sums to k along the last axis."""
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    khot = torch.zeros_like(scores)
    onehot = torch.zeros_like(scores)
    s = scores
    for _ in range(k):
        s = s + torch.log(torch.clamp(1.0 - onehot, min=1e-20))
        onehot = torch.softmax(s / tau, dim=-1)
        khot = khot + onehot
    return khot


def gumbel_topk_st(
    scores: Tensor,
    k: int,
    tau: float,
    *,
    noise: bool = True,
    generator: torch.Generator | None = None,
    batch: int | None = None,
) -> Tensor:
    """Straight-through (Gumbel) top-k: forward the hard k-hot of the (perturbed) scores,
    backward the gradient of their relaxed k-hot. With ``batch``, one draw per sample:
    (batch, *scores.shape)."""
    s = scores if batch is None else scores.expand(batch, *scores.shape)
    if noise:
        u = torch.rand(s.shape, generator=generator, dtype=s.dtype)
        s = s - torch.log(-torch.log(u.clamp(1e-10, 1.0 - 1e-7)))
    hard = topk_mask(s.detach(), k)
    soft = relaxed_topk(s, k, tau)
    return hard + (soft - soft.detach())  # exactly hard in the forward pass


# ------------------------------------------------------------------------------ modules
class SlotEncoder(nn.Module):
    """x_t → n slots: values (batch, n) from x, keys (n, key_dim) naming the slots."""

    def __init__(self, obs_dim: int, n_slots: int, key_dim: int, hidden: int = 0) -> None:
        super().__init__()
        if hidden:
            self.values: nn.Module = nn.Sequential(
                nn.Linear(obs_dim, hidden), nn.Tanh(), nn.Linear(hidden, n_slots)
            )
        else:
            self.values = nn.Linear(obs_dim, n_slots)
        self.keys = nn.Parameter(torch.randn(n_slots, key_dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.values(x)


class Verifier(nn.Module):
    """One small tanh MLP per query key: pred_q = w2_q · tanh(W1_q (v ⊙ m_q) + b1_q) + b2_q."""

    def __init__(self, n_queries: int, n_slots: int, hidden: int, fan_in: int) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(n_queries, n_slots, hidden) / math.sqrt(fan_in))
        self.b1 = nn.Parameter(torch.zeros(n_queries, hidden))
        self.w2 = nn.Parameter(torch.randn(n_queries, hidden) / math.sqrt(hidden))
        self.b2 = nn.Parameter(torch.zeros(n_queries))

    def forward(self, values: Tensor, mask: Tensor) -> Tensor:
        """``values`` (B, n), ``mask`` (B, q, n) or (q, n) → predictions (B, q)."""
        u = values[:, None, :] * mask
        h = torch.tanh(torch.einsum("bqn,qnh->bqh", u, self.w1) + self.b1)
        return torch.einsum("bqh,qh->bq", h, self.w2) + self.b2


class Output(NamedTuple):
    """One forward pass: slot values, the verifier's predictions and the selection mask."""

    values: Tensor  # (B, n)
    prediction: Tensor  # (B, n): prediction of each query slot's next value
    mask: Tensor  # (B, n, n) or (n, n): selected slots per query


class ConsciousnessPriorModel(nn.Module):
    """Encoder → attention bottleneck (top-k) → verifier; ``spec.bottleneck=False``: baseline."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        n, d = spec.n_slots, spec.key_dim
        self.encoder = SlotEncoder(spec.obs_dim, n, d, spec.encoder_hidden)
        self.query = nn.Linear(d, d, bias=False)
        self.key = nn.Linear(d, d, bias=False)
        fan_in = spec.k if spec.bottleneck else n
        self.verifier = Verifier(n, n, spec.hidden, fan_in)

    def scores(self) -> Tensor:
        """Attention scores s (queries, slots) = (W_q key_i)·(W_k key_j)/√d."""
        keys = self.encoder.keys
        return self.query(keys) @ self.key(keys).T / math.sqrt(self.spec.key_dim)

    def selected(self) -> np.ndarray:
        """The k slots each query selects at evaluation (no noise): (n, k), ascending."""
        if not self.spec.bottleneck:
            raise ValueError("the baseline has no bottleneck: it reads every slot")
        with torch.no_grad():
            idx = self.scores().topk(self.spec.k, dim=-1).indices
        return np.sort(idx.numpy(), axis=1)

    def forward(
        self,
        x: Tensor,
        *,
        sample: bool = False,
        tau: float = 3.0,
        generator: torch.Generator | None = None,
    ) -> Output:
        """Encode, select (``sample``: Gumbel top-k with straight-through, per sample; else the
        k best scores) and predict."""
        values = self.encoder(x)
        n = self.spec.n_slots
        if not self.spec.bottleneck:
            mask = torch.ones(n, n, dtype=values.dtype)
        elif sample:
            mask = gumbel_topk_st(
                self.scores(), self.spec.k, tau, generator=generator, batch=len(x)
            )
        else:
            mask = topk_mask(self.scores(), self.spec.k)
        return Output(values, self.verifier(values, mask), mask)


def build_model(spec: ModelSpec, seed: int) -> ConsciousnessPriorModel:
    """A model with weights drawn from ``seed`` (the global torch generator is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ConsciousnessPriorModel(spec)


# ------------------------------------------------------------------------------ losses, training
def diversity_loss(scores: Tensor) -> Tensor:
    """log n − H(ā), ā = softmax(scores) averaged over queries: 0 when the queries together
    spread over all slots, log n when all attend the same one."""
    a_bar = torch.softmax(scores, dim=-1).mean(dim=0)
    entropy = -(a_bar * torch.log(a_bar.clamp_min(1e-12))).sum()
    return math.log(scores.shape[-1]) - entropy


def spread_terms(values: Tensor) -> tuple[Tensor, Tensor]:
    """The two terms that let slots be found without the latent regression (VICReg, Bardes et
    al. 2022, on a batch of slot values (B, n)): ``variance`` = mean_j relu(1 − std_j) keeps
    every slot alive (constant slots predict themselves perfectly: the prediction loss alone
    collapses), ``independence`` = Σ_{i≠j} C_ij² / n (C: the batch covariance) keeps slots from
    carrying the same signal."""
    centred = values - values.mean(dim=0)
    std = torch.sqrt(centred.var(dim=0) + 1e-4)
    variance = torch.relu(1.0 - std).mean()
    cov = centred.T @ centred / max(len(values) - 1, 1)
    off = cov - torch.diag(torch.diagonal(cov))
    return variance, (off**2).sum() / values.shape[1]


def loss_terms(
    model: ConsciousnessPriorModel,
    x_t: Tensor,
    x_next: Tensor,
    z_t: Tensor,
    *,
    aux_weight: float,
    entropy_weight: float,
    tau: float,
    variance_weight: float = 0.0,
    independence_weight: float = 0.0,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """The training losses of one batch: ``prediction`` (verifier vs the slots' next values,
    detached), ``aux`` (slot values vs z_t; only with ``aux_weight`` > 0), ``variance`` and
    ``independence`` (:func:`spread_terms`; only with a weight > 0), ``diversity`` (bottleneck
    only), ``total``."""
    out = model(x_t, sample=True, tau=tau, generator=generator)
    with torch.no_grad():
        target = model.encoder(x_next)
    prediction = torch.mean((out.prediction - target) ** 2)
    total = prediction
    terms = {"prediction": prediction}
    if aux_weight > 0:
        aux = torch.mean((out.values - z_t) ** 2)
        total = total + aux_weight * aux
        terms["aux"] = aux
    if variance_weight > 0 or independence_weight > 0:
        variance, independence = spread_terms(out.values)
        total = total + variance_weight * variance + independence_weight * independence
        terms["variance"], terms["independence"] = variance, independence
    if model.spec.bottleneck:
        div = diversity_loss(model.scores())
        total = total + entropy_weight * div
        terms["diversity"] = div
    terms["total"] = total
    return terms


@dataclass(frozen=True)
class TrainData:
    """Training transitions: observations x_t, x_{t+1} and the latent z_t (float32 tensors)."""

    x_t: Tensor
    x_next: Tensor
    z_t: Tensor

    @classmethod
    def from_arrays(cls, x_t: np.ndarray, x_next: np.ndarray, z_t: np.ndarray) -> TrainData:
        """Wrap numpy arrays (checked for matching lengths)."""
        if not len(x_t) == len(x_next) == len(z_t):
            raise ValueError("x_t, x_next and z_t must hold the same number of transitions")
        tensors = [torch.as_tensor(np.asarray(a), dtype=torch.float32) for a in (x_t, x_next, z_t)]
        return cls(*tensors)


def train(
    model: ConsciousnessPriorModel,
    data: TrainData,
    *,
    steps: int,
    batch: int,
    lr: float,
    aux_weight: float = 1.0,
    entropy_weight: float = 0.1,
    tau: float = 3.0,
    variance_weight: float = 0.0,
    independence_weight: float = 0.0,
    seed: int = 0,
    log_every: int = 50,
    evaluate: Callable[[ConsciousnessPriorModel], Mapping[str, float]] | None = None,
    progress: Callable[[int, str], None] | None = None,
) -> dict[str, list[float]]:
    """Adam (learning rate ``lr`` with cosine decay to lr/20) on mini-batches drawn with
    replacement from ``data`` (its own generator, from
    ``seed``, also drawing the Gumbel noise). Every ``log_every`` steps (and at the last) the mean
    losses since the previous record, plus ``evaluate(model)``, are appended to the history and
    ``progress(1, message)`` is called. Returns the history (lists keyed by name; ``step`` first)
    and its ``samples_per_second``."""
    if steps < 1 or batch < 1 or log_every < 1:
        raise ValueError("steps, batch and log_every must be positive")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive number, got {lr}")
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    # cosine decay to lr/20: the last steps settle the encoder's unmixing (SGD noise left in it
    # is crosstalk between slots, which a shift of other variables would leak through)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(s / steps, 1.0)))
    )
    history: dict[str, list[float]] = {"step": []}
    sums: dict[str, float] = {}
    count, seconds = 0, 0.0
    n = len(data.x_t)
    for step_i in range(1, steps + 1):
        start = time.perf_counter()
        idx = torch.randint(n, (batch,), generator=gen)
        terms = loss_terms(
            model, data.x_t[idx], data.x_next[idx], data.z_t[idx],
            aux_weight=aux_weight, entropy_weight=entropy_weight, tau=tau,
            variance_weight=variance_weight, independence_weight=independence_weight,
            generator=gen,
        )  # fmt: skip
        opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        opt.step()
        sched.step()
        seconds += time.perf_counter() - start
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + float(value.detach())
        count += 1
        if step_i % log_every == 0 or step_i == steps:
            history["step"].append(float(step_i))
            for name, total in sums.items():
                history.setdefault(f"loss_{name}", []).append(total / count)
            if evaluate is not None:
                model.eval()
                for name, value in evaluate(model).items():
                    history.setdefault(name, []).append(float(value))
                model.train()
            sums, count = {}, 0
            if progress is not None:
                kind = "bottleneck" if model.spec.bottleneck else "baseline"
                progress(1, f"{kind} step {step_i}/{steps}: loss {history['loss_total'][-1]:.4f}")
    history["samples_per_second"] = [steps * batch / max(seconds, 1e-9)]
    return history


# ------------------------------------------------------------------------------ measures
def encode(model: ConsciousnessPriorModel, x: np.ndarray) -> np.ndarray:
    """Slot values of observations ``x`` (N, obs_dim) → (N, n)."""
    with torch.no_grad():
        return model.encoder(torch.as_tensor(x, dtype=torch.float32)).numpy().astype(float)


def predict(
    model: ConsciousnessPriorModel, x: np.ndarray, calibration: np.ndarray | None = None
) -> np.ndarray:
    """The verifier's predictions of every query slot's next value (evaluation selection); with
    ``calibration`` (:func:`calibrate`) mapped into the units of the variables the slots hold."""
    with torch.no_grad():
        out = model(torch.as_tensor(x, dtype=torch.float32), sample=False)
    pred = out.prediction.numpy().astype(float)
    return pred if calibration is None else calibration[0] * pred + calibration[1]


def match_slots(values: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one slot → variable matching, greedy on |correlation| (largest first) over held-out
    samples: returns ``match`` (slot j holds variable match[j]) and the matched |correlation|."""
    values, z = np.asarray(values, dtype=float), np.asarray(z, dtype=float)
    if values.ndim != 2 or z.ndim != 2 or values.shape != z.shape:
        raise ValueError(f"values and z must be (N, n) of one shape, got {values.shape}, {z.shape}")
    n = values.shape[1]
    vs = (values - values.mean(0)) / np.maximum(values.std(0), 1e-12)
    zs = (z - z.mean(0)) / np.maximum(z.std(0), 1e-12)
    corr = np.abs(vs.T @ zs) / len(values)  # (slots, variables)
    match = np.full(n, -1)
    strength = np.zeros(n)
    c = corr.copy()
    for _ in range(n):
        j, v = np.unravel_index(np.argmax(c), c.shape)
        match[j], strength[j] = v, corr[j, v]
        c[j, :], c[:, v] = -np.inf, -np.inf
    return match, strength


def calibrate(values: np.ndarray, z: np.ndarray, match: np.ndarray) -> np.ndarray:
    """Per slot j, the least-squares line z_{match[j]} ≈ a_j v_j + b_j over held-out samples:
    (2, n) array of slopes and intercepts. Slots found without the latent regression hold their
    variable in arbitrary sign and scale; this puts them (and predictions of them) in the
    variable's units, for the measures only."""
    values, z = np.asarray(values, dtype=float), np.asarray(z, dtype=float)
    target = z[:, np.asarray(match, dtype=np.int64)]
    vc, tc = values - values.mean(0), target - target.mean(0)
    slope = (vc * tc).sum(0) / np.maximum((vc**2).sum(0), 1e-12)
    return np.stack([slope, target.mean(0) - slope * values.mean(0)])


def parent_precision(
    selected: np.ndarray, parents: np.ndarray, match: np.ndarray | None = None
) -> dict[str, float | np.ndarray]:
    """Share of the selected slots that hold true parents of the queried variable.

    ``selected`` (q, k): slots chosen by query slot i; ``parents`` (n, n) boolean, parents[v, u]:
    u is a parent of v; ``match`` (n,): the variable each slot holds (default: slot j = variable
    j). Query i asks for variable match[i]. ``chance``: the expected precision of k slots drawn
    uniformly from all n candidate slots, mean over queries of |pa(match[i])| / n. ``recall``:
    share of each queried variable's parents that were selected."""
    selected = np.asarray(selected, dtype=np.int64)
    parents = np.asarray(parents, dtype=bool)
    n = parents.shape[0]
    if parents.shape != (n, n) or selected.ndim != 2 or len(selected) != n:
        raise ValueError("selected must be (n, k) and parents (n, n)")
    if selected.size and (selected.min() < 0 or selected.max() >= n):
        raise ValueError(f"selected slots must lie in 0..{n - 1}")
    match = np.arange(n) if match is None else np.asarray(match, dtype=np.int64)
    if sorted(match.tolist()) != list(range(n)):
        raise ValueError("match must be a permutation of the variables")
    k = selected.shape[1]
    hits = np.array([parents[match[i], match[selected[i]]].sum() for i in range(n)], dtype=float)
    n_pa = parents[match].sum(axis=1).astype(float)
    return {
        "precision": float(hits.sum() / (n * k)),
        "chance": float(np.mean(n_pa / n)),
        "recall": float(np.mean(hits / np.maximum(n_pa, 1))),
        "per_query": hits / k,
    }


def prediction_errors(pred: np.ndarray, z_next: np.ndarray, match: np.ndarray) -> np.ndarray:
    """Normalised squared error per query slot i: E[(pred_i − z_{t+1, match[i]})²] / Var(z)."""
    target = np.asarray(z_next)[:, match]
    return np.mean((pred - target) ** 2, axis=0) / np.maximum(target.var(axis=0), 1e-12)


def shift_test(
    model: ConsciousnessPriorModel,
    world: lw.LatentWorld,
    z_t: np.ndarray,
    z_next: np.ndarray,
    match: np.ndarray,
    *,
    offset: float,
    scale: float,
    mean: np.ndarray,
    std: np.ndarray,
    seed: int,
    calibration: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per query slot i (variable v = match[i]): the normalised error of predicting z_{t+1,v}
    from observations of z_t (``in``) and of z_t with every non-parent of v shifted (``shift``,
    :func:`neurosim.latent_world.shift` with the training ``mean``/``std``); z_{t+1} is unchanged
    by construction. Both use the same observation-noise draws. ``calibration``: as in
    :func:`predict`."""
    n = world.n_variables
    errors_in, errors_shift = np.zeros(n), np.zeros(n)
    x_in = lw.observe(world, z_t, np.random.default_rng(seed))
    pred_in = predict(model, x_in, calibration)
    for i in range(n):
        v = int(match[i])
        zs = lw.shift(z_t, lw.non_parents(world, v), offset=offset, scale=scale, mean=mean, std=std)
        x_s = lw.observe(world, zs, np.random.default_rng(seed))
        pred_s = predict(model, x_s, calibration)[:, i]
        var = max(float(z_next[:, v].var()), 1e-12)
        errors_in[i] = np.mean((pred_in[:, i] - z_next[:, v]) ** 2) / var
        errors_shift[i] = np.mean((pred_s - z_next[:, v]) ** 2) / var
    return {"in": errors_in, "shift": errors_shift}
