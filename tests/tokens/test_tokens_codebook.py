"""k-means codebook: nearest-centroid assignment, seeded determinism, every code in use, the
hash, save/load and the errors a user can hit."""
import numpy as np
import pytest

from audiorole_ray.errors import ConfigError, InputError
from audiorole_ray.tokens.codebook import Codebook, fit_codebook, load_codebook


def blobs(seed=0, k=6, per=200, dim=16, spread=0.05):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim)) * 3
    truth = np.repeat(np.arange(k), per)
    x = centres[truth] + rng.normal(size=(k * per, dim)) * spread
    order = rng.permutation(len(x))
    return x[order].astype(np.float32), truth[order]


def test_assign_is_the_nearest_centroid():
    rng = np.random.default_rng(1)
    c = rng.normal(size=(37, 8)).astype(np.float32)
    book = Codebook(c, rng.normal(size=8).astype(np.float32), rng.uniform(0.5, 2, 8).astype(np.float32), {})
    x = rng.normal(size=(20_000, 8)).astype(np.float32)  # more than one distance block
    z = (x.astype(np.float64) - book.mean) / book.scale
    brute = np.argmin(((z[:, None, :] - c[None].astype(np.float64)) ** 2).sum(-1), axis=1)
    assert np.array_equal(book.assign(x), brute)
    with pytest.raises(ValueError, match=r"\(n, 8\)"):
        book.assign(x[:, :5])


def test_fit_finds_separated_clusters():
    x, truth = blobs()
    book = fit_codebook(x, 6, seed=0)
    labels = book.assign(x)
    # each true cluster maps to exactly one code and vice versa
    pairs = {(t, l) for t, l in zip(truth, labels)}
    assert len(pairs) == 6 and len({l for _, l in pairs}) == 6
    assert book.meta["frames"] == len(x) and book.meta["k"] == 6 and book.meta["seed"] == 0


def test_fit_is_deterministic_for_a_seed():
    x, _ = blobs(seed=3, k=10, spread=1.0)  # overlapping blobs: the result depends on the seeding
    a = fit_codebook(x, 24, seed=7)
    b = fit_codebook(x.copy(), 24, seed=7)
    assert a.hash == b.hash
    assert np.array_equal(a.centroids, b.centroids)
    assert np.array_equal(a.assign(x), b.assign(x))
    assert fit_codebook(x, 24, seed=8).hash != a.hash


def test_every_code_is_used_even_with_repeated_frames():
    rng = np.random.default_rng(0)
    x = np.concatenate([np.zeros((500, 4)), rng.normal(size=(40, 4))]).astype(np.float32)
    book = fit_codebook(x, 32, seed=0)
    assert len(np.unique(book.assign(x))) == 32


def test_constant_dimension_does_not_divide_by_zero():
    x, _ = blobs(k=3)
    x[:, 0] = 5.0
    book = fit_codebook(x, 3, seed=0)
    assert np.isfinite(book.centroids).all() and book.scale[0] == 1.0


def test_save_load_round_trip(tmp_path):
    x, _ = blobs()
    book = fit_codebook(x, 6, seed=0, meta={"model": "tiny"})
    path = tmp_path / "sub" / "codebook.npz"
    h = book.save(str(path))
    back = load_codebook(str(path))
    assert h == back.hash == book.hash
    assert back.meta["model"] == "tiny" and back.meta["hash"] == h
    assert np.array_equal(back.assign(x), book.assign(x))
    assert not (tmp_path / "sub" / "codebook.npz.tmp").exists()


def test_hash_follows_the_arrays():
    x, _ = blobs()
    book = fit_codebook(x, 6, seed=0)
    moved = Codebook(book.centroids + np.float32(1e-3), book.mean, book.scale, book.meta)
    assert moved.hash != book.hash
    assert Codebook(book.centroids, book.mean, book.scale, {"other": 1}).hash == book.hash


def test_corrupt_or_missing_codebook(tmp_path):
    with pytest.raises(InputError, match="no codebook"):
        load_codebook(str(tmp_path / "none.npz"))
    x, _ = blobs()
    book = fit_codebook(x, 6, seed=0)
    path = tmp_path / "codebook.npz"
    book.save(str(path))
    data = dict(np.load(path))
    data["centroids"] = data["centroids"] * 2
    np.savez(path, **data)
    with pytest.raises(InputError, match="corrupt"):
        load_codebook(str(path))


def test_fit_errors():
    x, _ = blobs(k=2, per=5)
    with pytest.raises(ConfigError, match="10 frames cannot fit a 16-entry codebook"):
        fit_codebook(x, 16)
    with pytest.raises(ConfigError, match="at least 2"):
        fit_codebook(x, 1)
    with pytest.raises(ConfigError, match="no frames"):
        fit_codebook(np.zeros((0, 4)), 4)
