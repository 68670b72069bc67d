"""vgtrain.stats: per-query hits and bootstrap intervals, against hand counts and normal approximations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vgtrain.recall import recalls
from vgtrain.stats import MISS, bootstrap_interval, first_hit_rank, hits, paired_bootstrap


def test_hits_on_hand_made_predictions():
    # query 0: a positive first; query 1: its only positive at rank 3 (1-based); query 2: no positives at all;
    # query 3: its positive (7) is never predicted; query 4: -1 ("no result") must not match anything
    predictions = np.array(
        [
            [4, 9, 8, 7, 6],
            [9, 8, 4, 7, 6],
            [0, 1, 2, 3, 4],
            [0, 1, 2, 3, 4],
            [-1, -1, 5, -1, -1],
        ]
    )
    positives = [np.array([4, 5]), np.array([4]), np.array([], dtype=np.int64), np.array([7]), np.array([5])]
    h = hits(predictions, positives, (1, 2, 3, 5, 10))
    assert h.dtype == bool and h.shape == (5, 5)
    assert h.tolist() == [
        [True, True, True, True, True],
        [False, False, True, True, True],  # rank 3: found at N=3 and N=5, not at N=1
        [False] * 5,  # no positives: a miss at every N (N=10 > k too)
        [False] * 5,
        [False, False, True, True, True],
    ]
    assert first_hit_rank(h[:, :0]).tolist() == [MISS] * 5
    assert recalls(predictions, positives, (1, 5, 10)) == pytest.approx({1: 20.0, 5: 60.0, 10: 60.0})


def test_recalls_match_a_plain_loop_on_random_data():
    rng = np.random.default_rng(3)
    n_db, nq, k = 300, 500, 20
    predictions = np.stack([rng.permutation(n_db)[:k] for _ in range(nq)])
    positives = [np.sort(rng.choice(n_db, rng.integers(0, 15), replace=False)) for _ in range(nq)]
    values = (1, 5, 10, 20)
    expected = {}
    for n in values:  # CosPlace's definition, spelled out
        found = sum(
            bool(set(p[:n].tolist()) & set(pos.tolist())) for p, pos in zip(predictions, positives, strict=True)
        )
        expected[n] = 100.0 * found / nq
    assert recalls(predictions, positives, values) == expected
    h = hits(predictions, positives, values)
    assert (h[:, :-1] <= h[:, 1:]).all()  # found at N implies found at every larger N


@pytest.mark.parametrize("n", [1, 37, 1000])
def test_all_hits_and_all_misses(n):
    assert bootstrap_interval(np.ones(n, bool)) == (100.0, 100.0)
    assert bootstrap_interval(np.zeros(n, bool)) == (0.0, 0.0)
    assert bootstrap_interval(np.zeros(0, bool)) == (0.0, 0.0)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_half_hits_over_400_queries_is_close_to_the_normal_approximation(seed):
    h = np.zeros(400, bool)
    h[::2] = True
    half = 1.96 * math.sqrt(0.25 / 400) * 100  # 4.9 points
    lo, hi = bootstrap_interval(h, resamples=2000, seed=seed)
    assert abs(lo - (50 - half)) <= 1 and abs(hi - (50 + half)) <= 1
    assert lo < 50 < hi


def test_equals_resampling_the_query_indices():
    # an independent bootstrap: draw query indices with replacement, many times
    rng = np.random.default_rng(7)
    h = rng.random(300) < 0.3
    idx = rng.integers(0, h.size, size=(20000, h.size))
    ref = np.percentile(h[idx].mean(axis=1) * 100, [2.5, 97.5])
    lo, hi = bootstrap_interval(h, resamples=20000, seed=1)
    assert lo == pytest.approx(ref[0], abs=0.5) and hi == pytest.approx(ref[1], abs=0.5)


def test_seeded_and_level():
    h = np.arange(1000) % 3 == 0
    assert bootstrap_interval(h, seed=5) == bootstrap_interval(h, seed=5)
    lo95, hi95 = bootstrap_interval(h, level=0.95)
    lo50, hi50 = bootstrap_interval(h, level=0.5)
    assert lo95 < lo50 < 100 / 3 < hi50 < hi95
    assert bootstrap_interval(h.astype(int)) == bootstrap_interval(h)


def test_bad_arguments():
    with pytest.raises(ValueError, match="resamples"):
        bootstrap_interval(np.ones(4, bool), resamples=0)
    with pytest.raises(ValueError, match="level"):
        bootstrap_interval(np.ones(4, bool), level=95)
    with pytest.raises(ValueError, match="0/1"):
        bootstrap_interval(np.array([0, 2, 1]))
    with pytest.raises(ValueError, match="same queries"):
        paired_bootstrap(np.ones(4, bool), np.ones(5, bool))


def test_paired_identical_is_zero():
    rng = np.random.default_rng(0)
    a = rng.random(500) < 0.6
    r = paired_bootstrap(a, a.copy())
    assert r == {"difference": 0.0, "interval": [0.0, 0.0], "won": 0, "lost": 0, "n": 500}


def test_paired_hand_case():
    # 400 queries: A finds 0..299 (300), B finds 200..399 (200); both find 200..299
    a = np.arange(400) < 300
    b = np.arange(400) >= 200
    r = paired_bootstrap(a, b, resamples=2000, seed=0)
    assert r["difference"] == pytest.approx(25.0)
    assert r["won"] == 200 and r["lost"] == 100 and r["n"] == 400  # A only: 0..199; B only: 300..399
    # paired normal approximation: d = a - b is +1 (200), -1 (100), 0 (100)
    d = a.astype(float) - b.astype(float)
    se = d.std() / math.sqrt(400) * 100  # population sd, as the bootstrap uses
    assert se == pytest.approx(100 * math.sqrt((300 / 400 - 0.25**2) / 400))
    lo, hi = r["interval"]
    assert lo < 25 < hi
    assert abs(lo - (25 - 1.96 * se)) <= 1 and abs(hi - (25 + 1.96 * se)) <= 1
    swapped = paired_bootstrap(b, a, resamples=2000, seed=0)
    assert swapped["difference"] == pytest.approx(-25.0) and (swapped["won"], swapped["lost"]) == (100, 200)


def test_paired_equals_resampling_the_same_indices():
    rng = np.random.default_rng(11)
    a = rng.random(250) < 0.55
    b = np.where(rng.random(250) < 0.8, a, ~a)
    idx = rng.integers(0, a.size, size=(20000, a.size))
    ref = np.percentile((a[idx].mean(axis=1) - b[idx].mean(axis=1)) * 100, [2.5, 97.5])
    lo, hi = paired_bootstrap(a, b, resamples=20000, seed=2)["interval"]
    assert lo == pytest.approx(ref[0], abs=0.5) and hi == pytest.approx(ref[1], abs=0.5)
