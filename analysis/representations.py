"""Representation comparisons on plain arrays (samples x units).

Every function takes numpy arrays whose rows are the same inputs (stimuli, states, time bins)
seen by two systems -- a Brian2 circuit's rates and a torch model's activations, two layers, two
training runs -- and returns numbers or small records. Nothing here touches a live simulation or a
torch model (DESIGN.md §2, §4.6).

- :func:`linear_cka`: linear centered kernel alignment (Kornblith, Norouzi, Lee & Hinton 2019,
  ICML, "Similarity of neural network representations revisited"), by default with the unbiased
  HSIC estimator of Song, Smola, Gretton, Bedo & Borgwardt 2012 (JMLR 13:1393) as used by Nguyen,
  Raghu & Kornblith 2021 (ICLR, "Do wide and deep networks learn the same things?"): the biased
  estimator is inflated on unrelated data at few samples, the unbiased one is not (README).
- :func:`rdm`, :func:`compare_rdms`, :func:`rsa`: representational similarity analysis
  (Kriegeskorte, Mur & Bandettini 2008, Front Syst Neurosci 2:4) through rsatoolbox 0.3.2:
  one dissimilarity matrix per representation, compared by rank correlation.
- :func:`ridge_probe`: cross-validated ridge regression from a representation onto known factors
  (e.g. the true (x, y) of the ICF grid world), held-out R² with alpha chosen by nested CV.
- :func:`selectivity_matrix`: the selectivity of Independently Controllable Features (E. Bengio,
  Thomas, Pineau, Precup & Y. Bengio 2017, arXiv:1703.07718; Thomas et al. 2017,
  arXiv:1708.01289) computed on any population's rates.
- :func:`parent_share`, :func:`traced_weights`: where a predictor looks (issue 17): the share of
  its sensitivity to the input variables that falls on the true parents of what it predicts,
  from input gradients (e.g. :func:`neurosim.latent_world.sensitivity`) or from weights traced
  through the layers; the circuits' counterpart of the Consciousness Prior's parent precision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = [
    "RSAResult",
    "RidgeProbeResult",
    "compare_rdms",
    "linear_cka",
    "parent_share",
    "rdm",
    "ridge_probe",
    "rsa",
    "selectivity_matrix",
    "traced_weights",
]

RDM_METRICS = ("correlation", "euclidean")
RANK_METHODS = ("spearman", "rho-a", "kendall", "tau-a")
NUMERATORS = ("signed", "abs", "relu")


def _as_samples_units(a: np.ndarray, name: str) -> np.ndarray:
    """Return ``a`` as a finite float64 (samples, units) array or raise a ValueError naming it."""
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (samples, units), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one sample and one unit, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf values")
    return arr


# ------------------------------------------------------------------------------------------------
# Linear CKA
# ------------------------------------------------------------------------------------------------


def _hsic_biased(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741
    """Biased HSIC tr(K H L H) / (n - 1)² of two Gram matrices (Gretton et al. 2005)."""
    n = k.shape[0]
    h = np.eye(n) - 1.0 / n
    return float(np.sum((h @ k @ h) * l)) / (n - 1) ** 2


def _hsic_unbiased(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741
    """Unbiased HSIC estimator of Song et al. 2012, in the form used by Nguyen et al. 2021.

    HSIC_1 = [tr(K̃L̃) + 1ᵀK̃1 · 1ᵀL̃1 / ((n-1)(n-2)) - 2/(n-2) · 1ᵀK̃L̃1] / (n(n-3)),
    with K̃, L̃ the Gram matrices with their diagonals set to zero.
    """
    n = k.shape[0]
    kt = k.copy()
    lt = l.copy()
    np.fill_diagonal(kt, 0.0)
    np.fill_diagonal(lt, 0.0)
    k_row = kt.sum(axis=0)
    l_row = lt.sum(axis=0)
    term1 = float(np.sum(kt * lt))  # tr(K̃ L̃) with both symmetric
    term2 = float(k_row.sum() * l_row.sum()) / ((n - 1) * (n - 2))
    term3 = 2.0 * float(k_row @ l_row) / (n - 2)  # 1ᵀ K̃ L̃ 1
    return (term1 + term2 - term3) / (n * (n - 3))


def linear_cka(x: np.ndarray, y: np.ndarray, unbiased: bool = True) -> float:
    """Linear CKA between two representations of the same samples.

    CKA(X, Y) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with linear kernels K = X Xᵀ,
    L = Y Yᵀ (Kornblith et al. 2019). It is invariant to orthogonal transforms and isotropic
    scaling of either representation, not to arbitrary invertible linear maps.

    ``unbiased=True`` (the default) uses the unbiased HSIC estimator of Song et al. 2012, as
    Nguyen, Raghu & Kornblith 2021 do: on independent data it is close to 0 even with few
    samples, whereas the biased estimator tr(KHLH)/(n-1)² is inflated when samples are few
    relative to units (measured values: README; DESIGN.md §4.6).
    The unbiased value can be slightly negative. Features are centered first; that leaves both
    estimators unchanged mathematically (HSIC is invariant to shifting the feature map) and avoids
    cancellation error.

    Args:
        x: (n_samples, p) array; rows are samples.
        y: (n_samples, q) array with the same rows; p and q may differ.
        unbiased: use the unbiased estimator (needs n_samples >= 4) or the biased one
            (n_samples >= 2).

    Returns:
        The CKA value (1 for identical representations up to rotation and scale).

    Raises:
        ValueError: on shapes that are not 2-D, differing numbers of samples, too few samples,
            NaN or inf values, or a representation without variance (CKA undefined).
    """
    xa = _as_samples_units(x, "x")
    ya = _as_samples_units(y, "y")
    n = xa.shape[0]
    if ya.shape[0] != n:
        raise ValueError(f"x and y must have the same number of samples, got {n} and {ya.shape[0]}")
    min_n = 4 if unbiased else 2
    if n < min_n:
        estimator = "unbiased" if unbiased else "biased"
        raise ValueError(f"the {estimator} estimator needs at least {min_n} samples, got {n}")
    for arr, name in ((xa, "x"), (ya, "y")):
        if np.all(np.ptp(arr, axis=0) == 0):
            raise ValueError(f"{name} is constant across samples: CKA is undefined")
    xa = xa - xa.mean(axis=0)
    ya = ya - ya.mean(axis=0)
    k = xa @ xa.T
    lm = ya @ ya.T
    hsic = _hsic_unbiased if unbiased else _hsic_biased
    hxy, hxx, hyy = hsic(k, lm), hsic(k, k), hsic(lm, lm)
    for value, name in ((hxx, "x"), (hyy, "y")):
        # the unbiased self-HSIC of a degenerate sample can come out <= 0 (CKA undefined)
        if not value > 0:
            raise ValueError(
                f"HSIC({name}, {name}) = {value:.3g} <= 0 (too few distinct samples for the "
                "estimator): CKA is undefined"
            )
    return float(hxy / np.sqrt(hxx * hyy))


# ------------------------------------------------------------------------------------------------
# RSA
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RSAResult:
    """Result of :func:`rsa`: the rank correlation of the two RDMs and the RDMs themselves.

    ``rdm_x`` and ``rdm_y`` are square (n_conditions, n_conditions) dissimilarity matrices with
    zero diagonals, as rsatoolbox computes them for ``metric``.
    """

    similarity: float
    rdm_x: np.ndarray
    rdm_y: np.ndarray
    metric: str
    method: str


def rdm(x: np.ndarray, metric: str = "correlation") -> np.ndarray:
    """Representational dissimilarity matrix of ``x`` (conditions x units) via rsatoolbox.

    ``metric="correlation"``: 1 − Pearson correlation between the two conditions' activity
    patterns (rsatoolbox ``calc_rdm(method="correlation")``; needs >= 2 units and patterns that
    are not constant across units). ``metric="euclidean"``: squared Euclidean distance divided by
    the number of units (rsatoolbox's convention).

    Returns:
        Square (n_conditions, n_conditions) RDM with a zero diagonal.
    """
    xa = _as_samples_units(x, "x")
    if metric not in RDM_METRICS:
        raise ValueError(f"metric must be one of {RDM_METRICS}, got {metric!r}")
    if xa.shape[0] < 3:
        raise ValueError(f"an RDM to compare needs at least 3 conditions, got {xa.shape[0]}")
    if metric == "correlation":
        if xa.shape[1] < 2:
            raise ValueError("the correlation metric needs at least 2 units")
        flat = np.ptp(xa, axis=1) == 0
        if np.any(flat):
            raise ValueError(
                f"the correlation metric is undefined for conditions whose pattern is constant "
                f"across units (rows {np.flatnonzero(flat).tolist()[:10]})"
            )
    import rsatoolbox.data
    import rsatoolbox.rdm

    rdms = rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(xa), method=metric)
    return np.asarray(rdms.get_matrices()[0], dtype=np.float64)


def compare_rdms(rdm_x: np.ndarray, rdm_y: np.ndarray, method: str = "spearman") -> float:
    """Rank correlation between two square RDMs' upper triangles via rsatoolbox ``compare``.

    ``method``: ``"spearman"`` (Spearman's rho), ``"rho-a"`` (rho under random tie breaking,
    for RDMs with ties; Nili et al. 2014), ``"kendall"`` (tau-b), ``"tau-a"`` (tau-a; slow).
    Rank correlation only assumes the two dissimilarities are monotonically related
    (Kriegeskorte et al. 2008), so any monotone transform of one RDM leaves it unchanged.
    """
    if method not in RANK_METHODS:
        raise ValueError(f"method must be one of {RANK_METHODS}, got {method!r}")
    mats = []
    for m, name in ((rdm_x, "rdm_x"), (rdm_y, "rdm_y")):
        a = np.asarray(m, dtype=np.float64)
        if a.ndim != 2 or a.shape[0] != a.shape[1]:
            raise ValueError(f"{name} must be a square matrix, got shape {a.shape}")
        if a.shape[0] < 3:
            raise ValueError(f"{name} needs at least 3 conditions, got {a.shape[0]}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} contains NaN or inf values")
        if not np.allclose(a, a.T):
            raise ValueError(f"{name} must be symmetric")
        upper = a[np.triu_indices(a.shape[0], k=1)]
        if np.ptp(upper) == 0:
            raise ValueError(f"{name} has all dissimilarities equal: rank correlation undefined")
        mats.append(a)
    if mats[0].shape != mats[1].shape:
        raise ValueError(f"RDMs differ in size: {mats[0].shape} and {mats[1].shape}")
    import rsatoolbox.rdm

    r1 = rsatoolbox.rdm.RDMs(mats[0][None])
    r2 = rsatoolbox.rdm.RDMs(mats[1][None])
    return float(rsatoolbox.rdm.compare(r1, r2, method=method)[0, 0])


def rsa(
    x: np.ndarray,
    y: np.ndarray,
    metric: str = "correlation",
    method: str = "spearman",
) -> RSAResult:
    """Representational similarity analysis of two representations of the same conditions.

    Computes one RDM per representation (:func:`rdm`, rsatoolbox) and their rank correlation
    (:func:`compare_rdms`), as in Kriegeskorte et al. 2008. Unlike CKA, RSA needs no common
    units and is blind to any transform that preserves the order of the dissimilarities.

    Args:
        x: (n_conditions, p) array; rows are conditions (stimuli, states).
        y: (n_conditions, q) array with the same rows.
        metric: dissimilarity, ``"correlation"`` or ``"euclidean"``.
        method: rank correlation, one of ``"spearman"``, ``"rho-a"``, ``"kendall"``, ``"tau-a"``.

    Returns:
        An :class:`RSAResult` with the similarity and both square RDMs.
    """
    xa = _as_samples_units(x, "x")
    ya = _as_samples_units(y, "y")
    if xa.shape[0] != ya.shape[0]:
        raise ValueError(
            f"x and y must have the same number of conditions, got {xa.shape[0]} and {ya.shape[0]}"
        )
    if method not in RANK_METHODS:
        raise ValueError(f"method must be one of {RANK_METHODS}, got {method!r}")
    rdm_x = rdm(xa, metric)
    rdm_y = rdm(ya, metric)
    return RSAResult(
        similarity=compare_rdms(rdm_x, rdm_y, method),
        rdm_x=rdm_x,
        rdm_y=rdm_y,
        metric=metric,
        method=method,
    )


# ------------------------------------------------------------------------------------------------
# Ridge probes
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RidgeProbeResult:
    """Result of :func:`ridge_probe`.

    Attributes:
        r2: (n_factors,) held-out R² per factor, pooled over the outer folds.
        alpha: (n_factors,) the alpha chosen most often over the outer folds (ties: the larger).
        alpha_per_fold: (folds, n_factors) alpha chosen by the inner CV in each outer fold.
        predictions: (n_samples, n_factors) out-of-fold predictions (each sample predicted by
            the model that did not see it), e.g. for slopes of predicted against true factors.
    """

    r2: np.ndarray
    alpha: np.ndarray
    alpha_per_fold: np.ndarray
    predictions: np.ndarray


def _fold_indices(n: int, folds: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Split a random permutation of range(n) into ``folds`` near-equal parts."""
    return np.array_split(rng.permutation(n), folds)


def _ridge_predict(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, alphas: np.ndarray
) -> np.ndarray:
    """Ridge predictions on ``x_test`` for every alpha: (n_alphas, n_test, n_factors).

    Standardizes x with the training rows' mean and standard deviation only (constant columns
    get scale 1) and fits an unpenalized intercept (the training mean of y); the closed form
    uses one SVD of the standardized training matrix for all alphas.
    """
    mu = x_train.mean(axis=0)
    sd = x_train.std(axis=0)
    sd[sd == 0] = 1.0
    z_train = (x_train - mu) / sd
    z_test = (x_test - mu) / sd
    y_mean = y_train.mean(axis=0)
    u, s, vt = np.linalg.svd(z_train, full_matrices=False)
    uty = u.T @ (y_train - y_mean)  # (r, k)
    zv = z_test @ vt.T  # (n_test, r)
    shrink = s[None, :] / (s[None, :] ** 2 + alphas[:, None])  # (n_alphas, r)
    return np.einsum("tr,ar,rk->atk", zv, shrink, uty) + y_mean


def ridge_probe(
    x: np.ndarray,
    factors: np.ndarray,
    alphas: Sequence[float] = tuple(np.logspace(-3, 4, 8)),
    folds: int = 5,
    seed: int = 0,
) -> RidgeProbeResult:
    """Cross-validated linear ridge probe from a representation onto known factors.

    For each of ``folds`` outer folds (a seeded random split), the probe is fit on the other
    folds and predicts the held-out one. Within the training folds alone, the units are
    standardized and alpha is chosen separately per factor by an inner ``folds``-fold CV (lowest
    squared error), so neither the scaling nor the choice of alpha sees the held-out samples.

    The held-out R² is pooled over folds: 1 − Σ (y − ŷ)² / Σ (y − ȳ_train)², where ȳ_train is
    the mean of the factor in the training folds of each sample's fold (the best prediction that
    ignores x). It is 1 for a perfectly decodable factor and about 0 or negative for a factor the
    representation does not carry.

    Args:
        x: (n_samples, n_units) representation.
        factors: (n_samples,) or (n_samples, n_factors) known factors (e.g. true x, y position).
        alphas: candidate ridge penalties (> 0) on the standardized units.
        folds: number of outer (and inner) folds, >= 2; needs n_samples >= 2 * folds.
        seed: seed of the fold split.

    Returns:
        A :class:`RidgeProbeResult`.
    """
    xa = _as_samples_units(x, "x")
    fa = np.asarray(factors, dtype=np.float64)
    if fa.ndim == 1:
        fa = fa[:, None]
    fa = _as_samples_units(fa, "factors")
    n = xa.shape[0]
    if fa.shape[0] != n:
        raise ValueError(
            f"x and factors must have the same number of samples, got {n} and {fa.shape[0]}"
        )
    alpha_arr = np.asarray(alphas, dtype=np.float64).ravel()
    if alpha_arr.size == 0 or not np.all(np.isfinite(alpha_arr)) or np.any(alpha_arr <= 0):
        raise ValueError("alphas must be a non-empty sequence of finite values > 0")
    alpha_arr = np.unique(alpha_arr)  # ascending
    if int(folds) != folds or folds < 2:
        raise ValueError(f"folds must be an integer >= 2, got {folds}")
    folds = int(folds)
    if n < 2 * folds:
        raise ValueError(f"{folds}-fold probing needs at least {2 * folds} samples, got {n}")
    constant = np.ptp(fa, axis=0) == 0
    if np.any(constant):
        raise ValueError(
            f"factors {np.flatnonzero(constant).tolist()} are constant: nothing to predict"
        )

    rng = np.random.default_rng(seed)
    outer = _fold_indices(n, folds, rng)
    k = fa.shape[1]
    predictions = np.empty_like(fa)
    null_sse = np.zeros(k)
    chosen = np.empty((folds, k))
    for f, test in enumerate(outer):
        train = np.concatenate([o for i, o in enumerate(outer) if i != f])
        x_tr, y_tr = xa[train], fa[train]
        inner_sse = np.zeros((alpha_arr.size, k))
        for inner_test in _fold_indices(train.size, folds, rng):
            mask = np.ones(train.size, dtype=bool)
            mask[inner_test] = False
            pred = _ridge_predict(x_tr[mask], y_tr[mask], x_tr[inner_test], alpha_arr)
            inner_sse += np.sum((pred - y_tr[inner_test][None]) ** 2, axis=1)
        # argmin over alphas per factor; on ties prefer the larger alpha (simpler model)
        best = alpha_arr.size - 1 - np.argmin(inner_sse[::-1], axis=0)
        chosen[f] = alpha_arr[best]
        pred = _ridge_predict(x_tr, y_tr, xa[test], alpha_arr)  # (n_alphas, n_test, k)
        predictions[test] = pred[best, :, np.arange(k)].T
        null_sse += np.sum((fa[test] - y_tr.mean(axis=0)) ** 2, axis=0)
    r2 = 1.0 - np.sum((fa - predictions) ** 2, axis=0) / null_sse

    alpha_mode = np.empty(k)
    for j in range(k):
        values, counts = np.unique(chosen[:, j], return_counts=True)
        alpha_mode[j] = values[counts == counts.max()].max()
    return RidgeProbeResult(r2=r2, alpha=alpha_mode, alpha_per_fold=chosen, predictions=predictions)


# ------------------------------------------------------------------------------------------------
# ICF selectivity
# ------------------------------------------------------------------------------------------------


def selectivity_matrix(
    rates_s: np.ndarray,
    rates_next: np.ndarray,
    numerator: Literal["signed", "abs", "relu"] = "signed",
    log: bool = False,
    tol: float = 0.0,
    log_floor: float = 1e-12,
) -> np.ndarray:
    """Selectivity S[k, a] of each unit k to each action a, on any population's rates.

    The ICF selectivity (E. Bengio et al. 2017; Thomas et al. 2017; DESIGN.md §4.4) of a
    deterministic environment (one next state s'_a per state and action)::

        sel(s, a, k) = N(f_k(s'_a) − f_k(s)) / Σ_k' |f_k'(s'_a) − f_k'(s)|
        S[k, a]      = E_s[ sel(s, a, k) ]        (or E_s[log sel(s, a, k)] with ``log=True``)

    with the numerator N signed (identity), absolute or ReLU (the published variants). With a
    signed numerator a feature that encodes x position has S = +1 for "right" and −1 for "left".

    **Zero denominators.** Where action a changes no unit (Σ_k' |Δ| <= ``tol``; e.g. a move into
    the border of the grid world, which leaves the state as it is), sel(s, a, ·) is 0/0: such
    states are *excluded* from the mean for that action, rather than counted as 0 (which would
    shrink S towards 0 by the fraction of border states) or regularized by an epsilon (which
    would make S depend on the epsilon). A column whose action never changes anything is NaN.
    Raise ``tol`` for noisy rates (e.g. estimated from spikes), where "no change" is not exact.

    **Large populations.** S stays per unit: the denominator sums over all units, so for a
    population with more units than actions each unit gets its share of the total change, and
    Σ_k |S[k, a]| <= 1 (= 1 with the absolute numerator). Values are therefore only comparable
    between populations of similar size and coding; for a model-sized comparison, first map the
    population onto a few factors (e.g. with :func:`ridge_probe` predictions) and pass those.

    Args:
        rates_s: (n_states, n_units) rates or features f(s) at each state.
        rates_next: (n_states, n_actions, n_units) f(s'_a) after each action from each state.
        numerator: ``"signed"``, ``"abs"`` or ``"relu"``.
        log: average log sel instead of sel (needs ``"abs"`` or ``"relu"``; sel is floored at
            ``log_floor`` before the log, so a unit that never moves gets log(log_floor)).
        tol: largest total change still treated as "nothing changed" (>= 0).
        log_floor: floor on sel before taking the log (> 0).

    Returns:
        (n_units, n_actions) selectivity matrix (NaN columns for actions that never change
        anything).
    """
    s = _as_samples_units(rates_s, "rates_s")
    nxt = np.asarray(rates_next, dtype=np.float64)
    if nxt.ndim != 3:
        raise ValueError(
            f"rates_next must be 3-D (n_states, n_actions, n_units), got shape {nxt.shape}"
        )
    if nxt.shape[0] != s.shape[0] or nxt.shape[2] != s.shape[1]:
        raise ValueError(
            f"rates_next shape {nxt.shape} does not match rates_s shape {s.shape} "
            "(expected (n_states, n_actions, n_units))"
        )
    if nxt.shape[1] == 0:
        raise ValueError("rates_next has no actions")
    if not np.all(np.isfinite(nxt)):
        raise ValueError("rates_next contains NaN or inf values")
    if numerator not in NUMERATORS:
        raise ValueError(f"numerator must be one of {NUMERATORS}, got {numerator!r}")
    if log and numerator == "signed":
        raise ValueError("log selectivity needs a non-negative numerator ('abs' or 'relu')")
    if not (np.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol must be finite and >= 0, got {tol}")
    if not (np.isfinite(log_floor) and log_floor > 0):
        raise ValueError(f"log_floor must be finite and > 0, got {log_floor}")

    delta = nxt - s[:, None, :]  # (n_states, n_actions, n_units)
    denom = np.abs(delta).sum(axis=2)  # (n_states, n_actions)
    valid = denom > tol
    if numerator == "abs":
        num = np.abs(delta)
    elif numerator == "relu":
        num = np.maximum(delta, 0.0)
    else:
        num = delta
    sel = np.divide(num, denom[:, :, None], out=np.zeros_like(num), where=valid[:, :, None])
    if log:
        sel = np.log(np.maximum(sel, log_floor))
    count = valid.sum(axis=0)  # (n_actions,)
    total = np.where(valid[:, :, None], sel, 0.0).sum(axis=0)  # (n_actions, n_units)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count[:, None]
    mean[count == 0] = np.nan
    return mean.T


# ------------------------------------------------------------------------------------------------
# Where a predictor looks: parent share of its sensitivity
# ------------------------------------------------------------------------------------------------


def parent_share(sensitivity: np.ndarray, parents: np.ndarray) -> dict[str, float | np.ndarray]:
    """Share of each output's sensitivity that falls on its true parents.

    ``sensitivity`` (n_outputs, n_variables): how strongly output i depends on input variable j
    (e.g. the mean |∂y_i/∂z_j| of :func:`neurosim.latent_world.sensitivity`, or
    :func:`traced_weights`); only magnitudes count. ``parents`` (n_outputs, n_variables)
    boolean: j is a parent of the variable output i predicts. Returns ``per_output``
    Σ_{j∈pa(i)} |S_ij| / Σ_j |S_ij| (NaN for an output sensitive to nothing), ``mean`` over
    outputs, and ``chance``: the mean parent fraction |pa(i)| / n, the share of a predictor
    that looks at every variable alike. 1 for a predictor that reads only the parents."""
    sens = np.abs(np.asarray(sensitivity, dtype=np.float64))
    pa = np.asarray(parents, dtype=bool)
    if sens.ndim != 2 or pa.shape != sens.shape:
        raise ValueError(
            f"sensitivity and parents must be 2-D of one shape, got {sens.shape}, {pa.shape}"
        )
    if not np.all(np.isfinite(sens)):
        raise ValueError("sensitivity contains NaN or inf values")
    total = sens.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per = np.where(total > 0, (sens * pa).sum(axis=1) / total, np.nan)
    return {
        "per_output": per,
        "mean": float(np.nanmean(per)) if np.any(np.isfinite(per)) else float("nan"),
        "chance": float(pa.mean(axis=1).mean()),
    }


def traced_weights(weights: Sequence[np.ndarray]) -> np.ndarray:
    """|W_L| ··· |W_2| |W_1|: the magnitude of every input-to-output path summed over the
    layers, for weight matrices given input layer first, each (n_out, n_in). A path's
    sensitivity is bounded by the product of its weights (times the activation slopes, here 1),
    so an input no path reaches has 0 in its column."""
    if len(weights) == 0:
        raise ValueError("weights must hold at least one matrix")
    out = np.abs(np.asarray(weights[0], dtype=np.float64))
    if out.ndim != 2:
        raise ValueError(f"weight matrices must be 2-D, got shape {out.shape}")
    for w in weights[1:]:
        w = np.abs(np.asarray(w, dtype=np.float64))
        if w.ndim != 2 or w.shape[1] != out.shape[0]:
            raise ValueError(
                f"weight shapes do not chain: {w.shape} after a layer of {out.shape[0]} units"
            )
        out = w @ out
    return out
