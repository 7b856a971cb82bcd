"focal_tutorial.cnn: fit_cnn's checks, seeding and thread handling, oversampling, and predict."
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

import focal_tutorial.cnn as cnn
from focal_tutorial.cnn import fit_cnn, predict, predict_logits
from focal_tutorial.data import digits_split


def tiny_data():
    Xtr, ytr, _, _ = digits_split(1.0, seed=0)  # labels 0..3: already class positions
    return Xtr[:64], ytr[:64]


def test_fit_cnn_needs_8x8_images():
    with pytest.raises(ValueError, match=r"X must be \(n, 1, 8, 8\)"):
        fit_cnn(np.zeros((4, 1, 16, 16), np.float32), np.array([0, 1, 0, 1]), epochs=1)
    with pytest.raises(ValueError, match=r"got X \(4, 3, 8, 8\)"):
        fit_cnn(np.zeros((4, 3, 8, 8), np.float32), np.array([0, 1, 0, 1]), epochs=1)


def test_fit_cnn_leaves_the_callers_random_state_alone():
    X, y = tiny_data()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fit_cnn(X, y, seed=0, epochs=1)
    assert torch.equal(torch.rand(3), expected)  # fit_cnn used to reset it to torch.manual_seed(seed)


def test_fit_cnn_weights_are_pytorchs_default_initialisation_seeded():
    "Same initial weights as `torch.manual_seed(seed)` then building the model: the published numbers stay valid."
    X, y = tiny_data()
    torch.manual_seed(5)
    reference = cnn.SmallCNN(4, 8)
    lr0 = fit_cnn(X, y, seed=5, epochs=1, lr=1e-12)  # a negligible step: the weights are the initial ones
    for a, b in zip(reference.state_dict().values(), lr0.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-9)


def test_concurrent_fits_are_deterministic_and_restore_the_thread_count():
    X, y = tiny_data()
    before = torch.get_num_threads()
    expected = [fit_cnn(X, y, seed=s, epochs=2).state_dict() for s in range(4)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda s: fit_cnn(X, y, seed=s, epochs=2).state_dict(), range(4)))
    for e, g in zip(expected, got):
        assert all(torch.equal(e[k], g[k]) for k in e)
    assert torch.get_num_threads() == before


def test_overlapping_one_thread_blocks_restore_the_callers_setting():
    original = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        block = cnn._one_thread
        block.__enter__()  # a first fit starts
        block.__enter__()  # a second one starts while the first runs
        assert torch.get_num_threads() == 1
        block.__exit__(None, None, None)  # the first ends while the second still runs: still one thread
        assert torch.get_num_threads() == 1
        block.__exit__(None, None, None)  # a save-and-restore pair would now leave the process on one thread
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(original)


def test_predict_is_deterministic_and_one_thread_free():
    X, y = tiny_data()
    m = fit_cnn(X, y, seed=1, epochs=1)
    assert np.array_equal(predict(m, X), predict(m, X))


def test_one_thread_state_is_fresh_in_a_worker_process():
    import pickle
    clone = pickle.loads(pickle.dumps(cnn._one_thread))
    assert isinstance(clone, type(cnn._one_thread)) and clone is not cnn._one_thread and clone._users == 0


def test_oversampling_draws_balanced_minibatches(monkeypatch):
    Xtr, ytr, _, _ = digits_split(1 / 3, seed=0)  # ratio 1/27: the rarest class keeps 5 images
    drawn = []

    class Recording(cnn.WeightedRandomSampler):
        def __iter__(self):
            idx = list(super().__iter__())
            drawn.append(idx)
            return iter(idx)

    monkeypatch.setattr(cnn, "WeightedRandomSampler", Recording)
    a = fit_cnn(Xtr, ytr, seed=0, epochs=3, oversample=True)
    counts = np.bincount(ytr)
    assert len(drawn) == 3 and all(len(d) == 4 * counts.max() for d in drawn)  # an epoch is the balanced set's size
    share = np.bincount(ytr[np.concatenate(drawn)], minlength=4) / len(np.concatenate(drawn))
    assert np.all(np.abs(share - 0.25) < 0.05), share  # the rarest class (5 images) is drawn as often as the others
    b = fit_cnn(Xtr, ytr, seed=0, epochs=3, oversample=True)
    assert all(torch.equal(x, z) for x, z in zip(a.state_dict().values(), b.state_dict().values()))  # seeded
    c = fit_cnn(Xtr, ytr, seed=0, epochs=3)
    assert not torch.equal(a[0].weight, c[0].weight)
    with pytest.raises(TypeError, match="oversample must be True or False"):
        fit_cnn(Xtr, ytr, epochs=1, oversample=1)


def test_predict_is_the_argmax_of_predict_logits():
    Xtr, ytr, Xte, _ = digits_split(1.0, seed=0)
    m = fit_cnn(Xtr, ytr, seed=0, epochs=1)
    z = predict_logits(m, Xte)
    assert z.shape == (160, 4) and z.dtype == np.float64 and np.array_equal(predict(m, Xte), z.argmax(1))
