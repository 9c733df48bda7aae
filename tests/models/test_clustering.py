"""Eq. 9 (composite distance) and the adaptive clustering against numpy / scikit-learn."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from macbdf.models.clustering import (
    ClusterState,
    composite_distance,
    kmeans,
    mahalanobis,
    shrinkage_precision,
    silhouette,
)


def _blobs(k, n_per, dim, seed, spread=0.15):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim)) * 3
    x = np.concatenate([c + spread * rng.normal(size=(n_per, dim)) for c in centres])
    return torch.tensor(x, dtype=torch.float64), centres


def test_eq9_composite_distance_matches_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 4))
    c = rng.normal(size=(3, 4))
    a = rng.normal(size=(4, 4))
    prec = a @ a.T + 0.5 * np.eye(4)          # any SPD precision matrix
    d_max, beta = 2.7, 0.3
    got, idx = composite_distance(torch.tensor(x), torch.tensor(c), torch.tensor(prec), d_max, beta)
    for i in range(7):
        maha = [np.sqrt((x[i] - c[k]) @ prec @ (x[i] - c[k])) for k in range(3)]
        k = int(np.argmin(maha))
        cos = x[i] @ c[k] / (np.linalg.norm(x[i]) * np.linalg.norm(c[k]))
        want = beta * maha[k] / d_max + (1 - beta) * (1 - cos)
        assert int(idx[i]) == k
        assert float(got[i]) == pytest.approx(want, rel=1e-10)


def test_eq9_invalid_centres_are_ignored():
    x = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    c = torch.tensor([[1.0, 0.0], [5.0, 5.0], [1.0, 0.0]], dtype=torch.float64)
    valid = torch.tensor([False, True, False])
    _, idx = composite_distance(x, c, torch.eye(2, dtype=torch.float64), 1.0, 0.5, valid)
    assert int(idx[0]) == 1


def test_mahalanobis_with_identity_is_euclidean():
    x, c = torch.randn(5, 3, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)
    torch.testing.assert_close(mahalanobis(x, c, torch.eye(3, dtype=torch.float64)), torch.cdist(x, c))


def test_shrinkage_precision_is_inverse_of_shrunk_pooled_covariance():
    x, _ = _blobs(2, 20, 3, 1)
    c, lab = kmeans(x, 2)
    p = shrinkage_precision(x, lab, c, 0.2).numpy()
    r = (x - c[lab]).numpy()
    s = r.T @ r / (len(r) - 1)
    mu = np.trace(s) / 3
    cov = 0.8 * s + 0.2 * mu * np.eye(3) + 1e-6 * mu * np.eye(3)
    np.testing.assert_allclose(p, np.linalg.inv(cov), rtol=1e-8)


def test_kmeans_and_silhouette_agree_with_sklearn():
    from sklearn.metrics import silhouette_score

    x, _ = _blobs(3, 15, 4, 2)
    c, lab = kmeans(x, 3)
    assert silhouette(x, lab) == pytest.approx(silhouette_score(x.numpy(), lab.numpy()), rel=1e-8)
    # well-separated blobs: every blob maps to one cluster
    assert len(set(lab.tolist())) == 3
    for b in range(3):
        assert len(set(lab[b * 15:(b + 1) * 15].tolist())) == 1


@pytest.mark.parametrize("k_true", [2, 3, 4])
def test_adaptive_k_picks_the_number_of_blobs(k_true):
    x, _ = _blobs(k_true, 25, 6, 10 + k_true)
    st = ClusterState(dim=6, k_choices=(2, 3, 4), bank_size=200).double()
    st.push(x)
    assert st.fit()
    assert int(st.num_clusters) == k_true
    assert int(st.centre_valid.sum()) == k_true and st.centres.shape == (4, 6)   # fixed max shape
    # d_max is the largest Mahalanobis distance of the bank to its nearest centre
    d = mahalanobis(x, st.centres[:k_true], st.precision).min(1).values
    assert float(st.d_max) == pytest.approx(float(d.max()))
    # members of the fitted data have composite distance <= beta + (1 - beta) * max cosine term
    dist = st.composite_distance(x, beta=1.0)
    assert float(dist.max()) == pytest.approx(1.0)


def test_unfitted_state_is_neutral_and_too_few_points_do_not_fit():
    st = ClusterState(dim=3, k_choices=(2, 3), bank_size=10)
    assert not st.fitted
    torch.testing.assert_close(st.composite_distance(torch.randn(4, 3), 0.5), torch.ones(4))
    st.push(torch.randn(5, 3))
    assert not st.fit()          # needs 2 * max K = 6 points
    st.push(torch.randn(3, 3))
    assert st.fit() and st.fitted


def test_bank_is_fifo():
    st = ClusterState(dim=1, k_choices=(2,), bank_size=4)
    st.push(torch.arange(3.0)[:, None])
    st.push(torch.arange(3.0, 6.0)[:, None])
    assert int(st.bank_count) == 4
    assert sorted(st.bank[:, 0].tolist()) == [2.0, 3.0, 4.0, 5.0]
    st.push(torch.arange(10.0, 20.0)[:, None])   # more than the capacity: the newest rows win
    assert sorted(st.bank[:, 0].tolist()) == [16.0, 17.0, 18.0, 19.0]


def test_fit_ignores_non_finite_rows():
    x, _ = _blobs(2, 10, 3, 3)
    x[0, 0] = float("nan")
    st = ClusterState(dim=3, k_choices=(2,), bank_size=50).double()
    assert st.fit(x)
    assert torch.isfinite(st.centres).all() and torch.isfinite(st.precision).all()
