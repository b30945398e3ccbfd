"""Known-answer tests of analysis.representations (CKA, RSA, ridge probes, ICF selectivity).

Bounds on random data were set from measured values (seeded; see the comments at each test).
"""

from __future__ import annotations

import numpy as np
import pytest

from analysis.representations import (
    RidgeProbeResult,
    RSAResult,
    compare_rdms,
    linear_cka,
    parent_share,
    rdm,
    ridge_probe,
    rsa,
    selectivity_matrix,
    traced_weights,
)
from neurosim import latent_world as lw

# ------------------------------------------------------------------------------------------------
# linear CKA
# ------------------------------------------------------------------------------------------------


def _random_orthogonal(n: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(n, n)))
    return q * np.sign(np.diag(r))


def _cka_unbiased_kornblith(x: np.ndarray, y: np.ndarray) -> float:
    """Independent reference: U-centered Gram matrices, as in Kornblith's CKA notebook."""

    def ucenter(g: np.ndarray) -> np.ndarray:
        g = g.copy()
        n = g.shape[0]
        np.fill_diagonal(g, 0.0)
        means = g.sum(axis=0) / (n - 2)
        means -= means.sum() / (2 * (n - 1))
        g -= means[:, None]
        g -= means[None, :]
        np.fill_diagonal(g, 0.0)
        return g

    gx, gy = ucenter(x @ x.T), ucenter(y @ y.T)
    return float(gx.ravel() @ gy.ravel() / (np.linalg.norm(gx) * np.linalg.norm(gy)))


def _cka_biased_features(x: np.ndarray, y: np.ndarray) -> float:
    """Independent reference: Kornblith et al. 2019's feature-space form of biased linear CKA."""
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    return float(np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


@pytest.mark.parametrize("unbiased", [True, False])
def test_cka_of_rotated_scaled_copy_is_one(unbiased: bool) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 12)) + 3.0  # a non-zero mean too: CKA centers
    rot = _random_orthogonal(12, rng)
    assert linear_cka(x, 4.2 * x @ rot, unbiased=unbiased) == pytest.approx(1.0, abs=1e-10)
    assert linear_cka(x, x, unbiased=unbiased) == pytest.approx(1.0, abs=1e-12)
    # an anisotropic scaling is not an invariance of CKA: the test above can fail
    aniso = x * np.linspace(0.1, 10.0, 12)
    assert linear_cka(x, aniso, unbiased=unbiased) < 0.95


@pytest.mark.parametrize("unbiased", [True, False])
def test_cka_symmetric_and_scale_invariant(unbiased: bool) -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(32, 10))
    y = x[:, :6] @ rng.normal(size=(6, 8)) + rng.normal(size=(32, 8))
    value = linear_cka(x, y, unbiased=unbiased)
    assert 0.2 < value < 0.99
    assert linear_cka(y, x, unbiased=unbiased) == pytest.approx(value, rel=1e-12)
    assert linear_cka(0.001 * x, 250.0 * y, unbiased=unbiased) == pytest.approx(value, rel=1e-9)
    assert linear_cka(x + 7.0, y - 3.0, unbiased=unbiased) == pytest.approx(value, rel=1e-9)


def test_cka_matches_independent_reference_formulas() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(25, 30))
    y = x[:, :10] + rng.normal(size=(25, 10))
    assert linear_cka(x, y) == pytest.approx(_cka_unbiased_kornblith(x, y), rel=1e-10)
    assert linear_cka(x, y, unbiased=False) == pytest.approx(_cka_biased_features(x, y), rel=1e-10)


def test_cka_independent_data_32_samples_unbiased_near_zero_biased_not() -> None:
    # Measured (32 samples, 10 units each, 20 independent pairs per block, 50 seeded blocks):
    # the mean of the unbiased estimator over 20 draws lay in [-0.034, 0.034] (sd 0.012),
    # the biased one in [0.214, 0.264]. DESIGN.md §4.6: the biased one reads ~0.2 here.
    rng = np.random.default_rng(0)
    unbiased, biased = [], []
    for _ in range(20):
        a = rng.normal(size=(32, 10))
        b = rng.normal(size=(32, 10))
        unbiased.append(linear_cka(a, b))
        biased.append(linear_cka(a, b, unbiased=False))
    assert abs(np.mean(unbiased)) < 0.05
    assert np.mean(biased) > 0.15


def test_cka_input_validation() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(10, 3))
    with pytest.raises(ValueError, match="same number of samples"):
        linear_cka(x, rng.normal(size=(9, 3)))
    with pytest.raises(ValueError, match="2-D"):
        linear_cka(x[:, 0], x[:, 0])
    with pytest.raises(ValueError, match="at least 4 samples"):
        linear_cka(x[:3], x[:3])
    assert linear_cka(x[:3], x[:3] * 2, unbiased=False) == pytest.approx(1.0)
    bad = x.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        linear_cka(bad, x)
    bad[2, 1] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        linear_cka(x, bad)
    with pytest.raises(ValueError, match="constant"):
        linear_cka(np.ones((10, 3)), x)


# ------------------------------------------------------------------------------------------------
# RSA
# ------------------------------------------------------------------------------------------------


def test_rsa_scaled_and_rotated_copies_give_one() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(20, 15))
    res = rsa(x, 3.0 * x)
    assert isinstance(res, RSAResult)
    assert res.similarity == pytest.approx(1.0, abs=1e-12)
    assert res.rdm_x.shape == (20, 20)
    np.testing.assert_allclose(np.diag(res.rdm_x), 0.0, atol=1e-12)
    np.testing.assert_allclose(res.rdm_x, res.rdm_y, atol=1e-12)
    # correlation distance: 1 - Pearson r of the two patterns
    assert res.rdm_x[0, 1] == pytest.approx(1.0 - np.corrcoef(x[0], x[1])[0, 1], rel=1e-10)
    # per-condition gain and offset leave correlation distances unchanged
    gains = rng.uniform(0.5, 2.0, size=(20, 1))
    assert rsa(x, gains * x + rng.normal(size=(20, 1))).similarity == pytest.approx(1.0)
    # Euclidean distances of a rotated, scaled copy are scaled: rank correlation 1, even with a
    # different number of units
    y = 0.3 * x @ _random_orthogonal(15, rng)
    y = np.hstack([y, np.zeros((20, 4))])
    assert rsa(x, y, metric="euclidean").similarity == pytest.approx(1.0, abs=1e-12)
    for method in ("rho-a", "kendall", "tau-a"):
        assert rsa(x, 3.0 * x, method=method).similarity == pytest.approx(1.0, abs=1e-12)


def test_compare_rdms_is_blind_to_monotone_transforms() -> None:
    rng = np.random.default_rng(6)
    d = rdm(rng.normal(size=(25, 8)), metric="euclidean")
    transformed = np.exp(3.0 * d) - 1.0  # monotone, strongly nonlinear, zero diagonal kept
    assert compare_rdms(d, transformed) == pytest.approx(1.0, abs=1e-12)
    upper = np.triu_indices(25, k=1)
    # a linear (Pearson) comparison would not give 1, so the test can tell rank from linear
    assert np.corrcoef(d[upper], transformed[upper])[0, 1] < 0.98
    # reversing the order gives -1
    reversed_order = d.max() - d
    np.fill_diagonal(reversed_order, 0.0)
    assert compare_rdms(d, reversed_order) == pytest.approx(-1.0, abs=1e-12)


def test_rsa_independent_data_near_zero() -> None:
    # Measured (30 conditions x 20 units, 20 pairs per block, 20 seeded blocks): the mean over
    # 20 draws lay in [-0.020, 0.016] (sd 0.010); one draw's sd is about 0.05.
    rng = np.random.default_rng(7)
    values = [
        rsa(rng.normal(size=(30, 20)), rng.normal(size=(30, 20))).similarity for _ in range(20)
    ]
    assert abs(np.mean(values)) < 0.05


def test_rsa_input_validation() -> None:
    rng = np.random.default_rng(8)
    x = rng.normal(size=(10, 4))
    with pytest.raises(ValueError, match="same number of conditions"):
        rsa(x, x[:9])
    with pytest.raises(ValueError, match="metric"):
        rsa(x, x, metric="cosine")
    with pytest.raises(ValueError, match="method"):
        rsa(x, x, method="pearson")
    flat = x.copy()
    flat[3] = 1.0
    with pytest.raises(ValueError, match="constant across units"):
        rsa(flat, x)
    with pytest.raises(ValueError, match="at least 3 conditions"):
        rsa(x[:2], x[:2])
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        rsa(x, bad)
    with pytest.raises(ValueError, match="all dissimilarities equal"):
        compare_rdms(1.0 - np.eye(5), rdm(x[:5]))
    with pytest.raises(ValueError, match="differ in size"):
        compare_rdms(rdm(x[:5]), rdm(x[:6]))


# ------------------------------------------------------------------------------------------------
# ridge probes
# ------------------------------------------------------------------------------------------------


def test_ridge_probe_linear_factor_and_independent_factor() -> None:
    # Measured (100 samples x 30 units, independent Gaussian factor, 300 seeds): single-draw R²
    # mean -0.017, 99th percentile 0.055, max 0.11; the mean over 10 draws lay in
    # [-0.036, -0.001]. The exactly linear factor gives R² > 0.9999.
    linear_r2, independent_r2 = [], []
    for seed in range(10):
        rng = np.random.default_rng(100 + seed)
        x = rng.normal(size=(100, 30))
        factors = np.stack([x @ rng.normal(size=30) + 2.0, rng.normal(size=100)], axis=1)
        res = ridge_probe(x, factors, seed=seed)
        assert isinstance(res, RidgeProbeResult)
        linear_r2.append(res.r2[0])
        independent_r2.append(res.r2[1])
    assert min(linear_r2) > 0.999
    assert np.mean(independent_r2) < 0.03


def test_ridge_probe_noisy_factor_and_more_units_than_samples() -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(300, 5))
    # factor = unit 0 + noise of variance 0.25: best possible R² = 1 / 1.25 = 0.8
    res = ridge_probe(x, x[:, 0] + 0.5 * rng.normal(size=300))
    assert res.r2.shape == (1,)
    assert 0.75 < res.r2[0] < 0.83
    # 200 units, 40 samples, unrelated factor: nested alpha choice keeps R² from being inflated
    wide = rng.normal(size=(40, 200))
    r2 = [ridge_probe(wide, rng.normal(size=40), seed=s).r2[0] for s in range(5)]
    assert np.mean(r2) < 0.05


def test_ridge_probe_standardizes_units_within_folds() -> None:
    rng = np.random.default_rng(12)
    x = rng.normal(size=(120, 4))
    target = x[:, 2].copy()
    x[:, 2] *= 1e-6  # a tiny-scale unit: without standardization any alpha >= 1 kills it
    res = ridge_probe(x, target, alphas=[1.0, 10.0])
    assert res.r2[0] > 0.99
    assert res.alpha_per_fold.shape == (5, 1)
    assert res.predictions.shape == (120, 1)
    assert set(res.alpha_per_fold.ravel()) <= {1.0, 10.0}
    # same seed, same result; the split depends on the seed
    again = ridge_probe(x, target, alphas=[1.0, 10.0])
    np.testing.assert_array_equal(res.predictions, again.predictions)


def test_ridge_probe_input_validation() -> None:
    rng = np.random.default_rng(13)
    x = rng.normal(size=(20, 3))
    with pytest.raises(ValueError, match="same number of samples"):
        ridge_probe(x, rng.normal(size=19))
    with pytest.raises(ValueError, match="at least 22 samples"):
        ridge_probe(x, rng.normal(size=20), folds=11)
    with pytest.raises(ValueError, match="constant"):
        ridge_probe(x, np.ones(20))
    with pytest.raises(ValueError, match="alphas"):
        ridge_probe(x, rng.normal(size=20), alphas=[0.0, 1.0])
    with pytest.raises(ValueError, match="folds"):
        ridge_probe(x, rng.normal(size=20), folds=1)
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        ridge_probe(bad, rng.normal(size=20))


# ------------------------------------------------------------------------------------------------
# ICF selectivity
# ------------------------------------------------------------------------------------------------

ACTIONS = ("up", "down", "left", "right")
MOVES = {"up": (0, 1), "down": (0, -1), "left": (-1, 0), "right": (1, 0)}


def _grid_rates(size: int = 5, encode=lambda x, y: [x, y]) -> tuple[np.ndarray, np.ndarray]:
    """Rates at every grid position and after each move, clipped at the border."""
    states = [(x, y) for x in range(size) for y in range(size)]
    now = np.array([encode(x, y) for x, y in states], dtype=float)
    nxt = np.array(
        [
            [
                encode(
                    min(max(x + MOVES[a][0], 0), size - 1), min(max(y + MOVES[a][1], 0), size - 1)
                )
                for a in ACTIONS
            ]
            for x, y in states
        ],
        dtype=float,
    )
    return now, nxt


def test_selectivity_signed_abs_relu_on_position_units() -> None:
    now, nxt = _grid_rates()  # unit 0 = x position, unit 1 = y position
    signed = selectivity_matrix(now, nxt)
    assert signed.shape == (2, 4)
    # border states (moving into the wall changes nothing) are excluded, so the values are
    # exactly ±1, not 0.8 as they would be if 0/0 counted as 0
    np.testing.assert_allclose(signed[0], [0.0, 0.0, -1.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(signed[1], [1.0, -1.0, 0.0, 0.0], atol=1e-12)
    absolute = selectivity_matrix(now, nxt, numerator="abs")
    assert np.all(absolute >= 0)
    np.testing.assert_allclose(absolute[0], [0.0, 0.0, 1.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(absolute.sum(axis=0), 1.0)
    relu = selectivity_matrix(now, nxt, numerator="relu")
    np.testing.assert_allclose(relu[0], [0.0, 0.0, 0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(relu[1], [1.0, 0.0, 0.0, 0.0], atol=1e-12)


def test_selectivity_shares_the_change_among_units() -> None:
    # unit 2 = x + y changes with every move: "right" changes units 0 and 2 by 1 each
    now, nxt = _grid_rates(encode=lambda x, y: [x, y, x + y, 3.0])
    s = selectivity_matrix(now, nxt)
    np.testing.assert_allclose(s[:, 3], [0.5, 0.0, 0.5, 0.0], atol=1e-12)
    np.testing.assert_allclose(s[:, 2], [-0.5, 0.0, -0.5, 0.0], atol=1e-12)
    # a large population stays per unit: ten copies of x and y give 0.1 each
    now, nxt = _grid_rates(encode=lambda x, y: [x] * 10 + [y] * 10)
    big = selectivity_matrix(now, nxt)
    assert big.shape == (20, 4)
    np.testing.assert_allclose(big[:10, 3], 0.1, atol=1e-12)
    np.testing.assert_allclose(np.abs(big).sum(axis=0), 1.0)


def test_selectivity_zero_denominators_and_log() -> None:
    now, nxt = _grid_rates()
    stay = np.concatenate([nxt, now[:, None, :] + 1e-9], axis=1)  # a fifth, "noop" action
    s = selectivity_matrix(now, stay, tol=1e-6)
    assert np.all(np.isnan(s[:, 4]))
    np.testing.assert_allclose(s[0, :4], [0.0, 0.0, -1.0, 1.0], atol=1e-12)
    # with tol=0 the tiny change counts and is shared equally between the two units
    np.testing.assert_allclose(selectivity_matrix(now, stay)[:, 4], [0.5, 0.5])
    log_s = selectivity_matrix(now, nxt, numerator="abs", log=True, log_floor=1e-8)
    np.testing.assert_allclose(log_s[0], [np.log(1e-8), np.log(1e-8), 0.0, 0.0], atol=1e-12)


def test_selectivity_input_validation() -> None:
    now, nxt = _grid_rates()
    with pytest.raises(ValueError, match="3-D"):
        selectivity_matrix(now, nxt[:, 0])
    with pytest.raises(ValueError, match="does not match"):
        selectivity_matrix(now[:-1], nxt)
    with pytest.raises(ValueError, match="does not match"):
        selectivity_matrix(now, nxt[:, :, :1])
    with pytest.raises(ValueError, match="numerator"):
        selectivity_matrix(now, nxt, numerator="square")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-negative numerator"):
        selectivity_matrix(now, nxt, log=True)
    bad = nxt.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        selectivity_matrix(now, bad)
    with pytest.raises(ValueError, match="tol"):
        selectivity_matrix(now, nxt, tol=-1.0)


# ------------------------------------------------------------------------------------------------
# parent share (issue 17)
# ------------------------------------------------------------------------------------------------


def _parent_graph() -> np.ndarray:
    pa = np.zeros((4, 4), dtype=bool)
    pa[0, [1, 2]] = pa[1, [2, 3]] = pa[2, [0, 3]] = pa[3, [0, 1]] = True
    return pa


def _parents_only_network(pa: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """A 4-8-4 network whose hidden units 2i, 2i+1 read only the parents of variable i and
    whose output i reads only those two hidden units."""
    w1 = np.zeros((8, 4))
    w2 = np.zeros((4, 8))
    for i in range(4):
        for h in (2 * i, 2 * i + 1):
            w1[h, pa[i]] = rng.normal(size=pa[i].sum())
        w2[i, [2 * i, 2 * i + 1]] = rng.normal(size=2)
    return [w1, w2]


def test_parent_share_is_one_for_a_circuit_that_reads_only_parents() -> None:
    pa = _parent_graph()
    w1, w2 = _parents_only_network(pa, np.random.default_rng(0))
    traced = parent_share(traced_weights([w1, w2]), pa)
    np.testing.assert_allclose(traced["per_output"], 1.0)
    assert traced["chance"] == pytest.approx(0.5)
    # the input gradient through a world that shows its variables as they are (M = I)
    world = _identity_world(pa)
    z = np.random.default_rng(1).normal(size=(50, 4))
    sens = lw.sensitivity(lambda x: np.tanh(np.tanh(x @ w1.T) @ w2.T), world, z)
    grad = parent_share(sens, pa)
    np.testing.assert_allclose(grad["per_output"], 1.0)


def test_parent_share_of_uniform_and_of_non_parent_readers() -> None:
    pa = _parent_graph()
    uniform = parent_share(traced_weights([np.ones((8, 4)), -np.ones((4, 8))]), pa)
    np.testing.assert_allclose(uniform["per_output"], 0.5)  # 2 parents of 4 inputs
    assert uniform["mean"] == pytest.approx(uniform["chance"])
    # an output that reads only non-parents scores 0; one that reads nothing is NaN
    s = (~pa).astype(float)
    s[3] = 0.0
    out = parent_share(s, pa)
    np.testing.assert_allclose(out["per_output"][:3], 0.0)
    assert np.isnan(out["per_output"][3]) and out["mean"] == 0.0


def _identity_world(pa: np.ndarray) -> lw.LatentWorld:
    n = len(pa)
    parents = np.array([np.flatnonzero(row) for row in pa])
    return lw.LatentWorld(parents, pa * 1.0, np.zeros(n), np.eye(n), 0.0, 0.0)


def test_latent_sensitivity_of_a_linear_map_through_the_mixture() -> None:
    """Through x = M z a linear read-out A x has sensitivity |A M| to the variables."""
    world = lw.make_world(3, 1, 5, seed=0)
    a = np.random.default_rng(2).normal(size=(2, 5))
    z = np.random.default_rng(0).normal(size=(20, 3))
    sens = lw.sensitivity(lambda x: x @ a.T, world, z)
    np.testing.assert_allclose(sens, np.abs(a @ world.mixing), rtol=1e-8)


def test_parent_share_input_validation() -> None:
    with pytest.raises(ValueError, match="one shape"):
        parent_share(np.ones((3, 4)), np.ones((4, 4), dtype=bool))
    with pytest.raises(ValueError, match="NaN"):
        parent_share(np.full((2, 2), np.nan), np.eye(2, dtype=bool))
    with pytest.raises(ValueError, match="chain"):
        traced_weights([np.ones((3, 4)), np.ones((2, 5))])
    with pytest.raises(ValueError, match="at least one"):
        traced_weights([])
    with pytest.raises(ValueError, match="eps"):
        lw.sensitivity(lambda x: x, lw.make_world(3, 1, 4), np.ones((3, 3)), eps=0.0)
