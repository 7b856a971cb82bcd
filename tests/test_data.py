"Tests of focal_tutorial.data: the digits split, the PNG dataset, the local backbone, and the shopee error path."
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from focal_tutorial.core import make_imbalanced
from focal_tutorial import data
from focal_tutorial.data import (DIGIT_CLASSES, PRETRAIN_CLASSES, default_cache_dir, digits_split,
                                 has_internet, offline_backbone, offline_dataset, shopee_dataset)
from shopee_archive import write_shopee_zip


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("focal_cache")


def _pool_counts(classes=DIGIT_CLASSES, test_per_class=40):
    from sklearn.datasets import load_digits
    return np.bincount(load_digits().target)[list(classes)] - test_per_class


# ---- digits_split -------------------------------------------------------------------------------------------------

def test_split_shapes_and_types():
    X_tr, y_tr, X_te, y_te = digits_split()
    assert X_tr.dtype == X_te.dtype == np.float32
    assert X_tr.shape[1:] == X_te.shape[1:] == (1, 8, 8) and len(X_tr) == len(y_tr) and len(X_te) == len(y_te)
    assert y_tr.dtype == y_te.dtype == np.int64
    assert 0 <= X_tr.min() and X_tr.max() <= 1 and X_tr.max() == 1
    assert set(np.unique(y_tr)) == set(np.unique(y_te)) == set(DIGIT_CLASSES)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_split_deterministic(seed):
    a, b = digits_split(seed=seed), digits_split(seed=seed)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))


def test_split_seeds_differ():
    a, b = digits_split(seed=0), digits_split(seed=1)
    assert not np.array_equal(a[2], b[2])  # another test set
    assert not (len(a[0]) == len(b[0]) and np.array_equal(a[0], b[0]))  # and another training set


@pytest.mark.parametrize("test_per_class", [10, 40, 100])
def test_test_set_balanced(test_per_class):
    _, _, _, y_te = digits_split(test_per_class=test_per_class)
    assert list(np.bincount(y_te, minlength=4)[list(DIGIT_CLASSES)]) == [test_per_class] * 4


@pytest.mark.parametrize("factor", [1, 0.5, 1 / 3, 0.2])
def test_train_counts_match_make_imbalanced(factor):
    _, y_tr, _, _ = digits_split(factor=factor, seed=3)
    expected = [int(n * factor**k) for k, n in enumerate(_pool_counts())]
    assert list(np.bincount(y_tr, minlength=4)[list(DIGIT_CLASSES)]) == expected


def test_ratio_one_is_balanced_pool():
    _, y_tr, _, _ = digits_split(factor=1)
    assert list(np.bincount(y_tr)[list(DIGIT_CLASSES)]) == list(_pool_counts())


def test_other_classes_and_order():
    X_tr, y_tr, _, y_te = digits_split(classes=(9, 4, 7), factor=0.5, test_per_class=20)
    assert set(np.unique(y_te)) == {4, 7, 9}
    counts = np.bincount(y_tr, minlength=10)
    pool = _pool_counts((4, 7, 9), 20)  # sorted order: 4 keeps all, 7 half, 9 a quarter
    assert [counts[4], counts[7], counts[9]] == [int(n * 0.5**k) for k, n in enumerate(pool)]


def test_train_test_disjoint():
    train, test, images, _ = data._split_indices(1 / 3, 0, DIGIT_CLASSES, 40)
    assert not set(train) & set(test)
    # the digits data holds no exact duplicate images across these sets either
    tr = {images[i].tobytes() for i in train}
    assert not any(images[i].tobytes() in tr for i in test)


def test_split_agrees_with_make_imbalanced():
    import pandas as pd
    train, test, _, y = data._split_indices(0.5, 2, DIGIT_CLASSES, 40)
    rng = np.random.default_rng(2)
    pool = []
    for c in DIGIT_CLASSES:
        pool.append(rng.permutation(np.flatnonzero(y == c))[40:])
    pool = np.sort(np.concatenate(pool))
    expected = make_imbalanced(pd.DataFrame({"index": pool, "label": y[pool]}), factor=0.5, seed=2)["index"]
    assert np.array_equal(np.sort(expected.to_numpy()), train)


@pytest.mark.parametrize("kwargs, match", [
    (dict(factor=0), r"factor must be a finite number in \(0, 1\]"),
    (dict(factor=1.01), r"factor must be a finite number in \(0, 1\]"),
    (dict(factor="1/3"), r"factor must be a finite number"),
    (dict(seed=-1), "seed must be an int in"),
    (dict(classes=(0, 1, 12)), "digits 0-9"),
    (dict(classes=(0, 0, 1)), "duplicates"),
    (dict(classes=(2,)), "at least 2"),
    (dict(classes="0123"), "sequence of digits"),
    (dict(test_per_class=0), "test_per_class must be a positive int"),
    (dict(test_per_class=177), "leaves no training image"),
    (dict(factor=0.01), "would keep 0 rows"),
])
def test_split_bad_args(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        digits_split(**kwargs)


# ---- default_cache_dir / offline_dataset ---------------------------------------------------------------------------

def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("FOCAL_TUTORIAL_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path.resolve()
    monkeypatch.delenv("FOCAL_TUTORIAL_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "focal_tutorial"


def test_offline_dataset_matches_split(cache):
    train_df, test_df = offline_dataset(seed=4, cache_dir=cache)
    _, y_tr, _, y_te = digits_split(seed=4)
    assert list(train_df.columns) == list(test_df.columns) == ["image", "label"]
    assert np.array_equal(train_df["label"].to_numpy(), y_tr) and np.array_equal(test_df["label"].to_numpy(), y_te)
    assert not set(train_df["image"]) & set(test_df["image"])
    for p in list(train_df["image"]) + list(test_df["image"]):
        assert os.path.isabs(p) and Path(p).is_file() and Path(p).is_relative_to(cache)


def test_pngs_readable_right_size_and_label(cache):
    train_df, test_df = offline_dataset(seed=0, cache_dir=cache, image_size=24, resample="nearest")
    images, y = data._load_digits()
    for df in (train_df, test_df):
        for path, label in df.sample(10, random_state=0).itertuples(index=False):
            index = int(Path(path).name.split("_")[0])
            assert y[index] == label and Path(path).name.endswith(f"digit{label}.png")
            with Image.open(path) as im:
                assert im.format == "PNG" and im.size == (24, 24) and im.mode == "RGB"
                a = np.asarray(im)
            # nearest upscaling by 3: each 3x3 block is one pixel of the 8x8 digit (white strokes on black)
            assert np.array_equal(a[::3, ::3, 0], np.round(images[index] * 255 / 16).astype(np.uint8))


def test_offline_dataset_cache_reuse(cache):
    train_df, test_df = offline_dataset(seed=5, cache_dir=cache)
    paths = list(train_df["image"]) + list(test_df["image"])
    mtimes = [os.stat(p).st_mtime_ns for p in paths]
    time.sleep(0.01)
    train2, test2 = offline_dataset(seed=5, cache_dir=cache)
    assert train2.equals(train_df) and test2.equals(test_df)
    assert mtimes == [os.stat(p).st_mtime_ns for p in paths]
    assert not list(Path(paths[0]).parent.glob(".*.tmp"))  # no temporary file left behind


def test_offline_dataset_uses_env_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("FOCAL_TUTORIAL_CACHE", str(tmp_path))
    train_df, _ = offline_dataset(factor=0.2, test_per_class=5)
    assert all(Path(p).is_relative_to(tmp_path.resolve()) for p in train_df["image"])


def test_offline_dataset_bad_args(cache):
    with pytest.raises(ValueError, match="image_size"):
        offline_dataset(cache_dir=cache, image_size=4)
    with pytest.raises(ValueError, match="unknown resample"):
        offline_dataset(cache_dir=cache, resample="lanczos")
    with pytest.raises(ValueError, match="factor"):
        offline_dataset(cache_dir=cache, factor=2)


# ---- offline_backbone -----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def backbone(cache):
    return offline_backbone(cache_dir=cache, epochs=1)


def test_backbone_folder(backbone):
    folder = Path(backbone)
    config = json.loads((folder / "config.json").read_text())
    assert (folder / "pytorch_model.bin").is_file()
    assert config["architecture"] == "resnet10t" and config["num_classes"] == 0 and config["num_features"] > 0
    cfg = config["pretrained_cfg"]
    assert cfg["input_size"] == [3, 32, 32] and cfg["mean"] == cfg["std"] == [0.5] * 3
    info = json.loads((folder / "pretraining.json").read_text())
    assert info["classes"] == list(PRETRAIN_CLASSES) and info["epochs"] == 1 and 0 <= info["holdout_accuracy"] <= 1


def test_backbone_loads_with_timm(backbone):
    import timm
    import torch
    arch = json.loads((Path(backbone) / "config.json").read_text())["architecture"]
    net = timm.create_model(arch, pretrained=True, num_classes=0,
                            pretrained_cfg_overlay=dict(file=f"{backbone}/pytorch_model.bin")).eval()
    saved = torch.load(f"{backbone}/pytorch_model.bin", map_location="cpu")
    assert all(torch.equal(saved[k], v) for k, v in net.state_dict().items())
    assert net(torch.zeros(1, 3, 32, 32)).shape == (1, 512)


def test_backbone_loads_in_automm(backbone):
    pytest.importorskip("autogluon.multimodal")
    from autogluon.multimodal.models.timm_image import TimmAutoModelForImagePrediction
    m = TimmAutoModelForImagePrediction(prefix="timm_image", checkpoint_name=backbone, num_classes=4)
    assert m.image_size == 32 and list(m.image_mean) == [0.5] * 3 and list(m.image_std) == [0.5] * 3
    assert m.head.out_features == 4


def test_backbone_cached_and_deterministic(cache, backbone):
    t0 = time.perf_counter()
    assert offline_backbone(cache_dir=cache, epochs=1) == backbone
    assert time.perf_counter() - t0 < 5  # no retraining (a generous bound: only a file check happens)
    import torch
    other = offline_backbone(cache_dir=cache / "again", epochs=1)
    a = torch.load(f"{backbone}/pytorch_model.bin"); b = torch.load(f"{other}/pytorch_model.bin")
    assert all(torch.equal(a[k], b[k]) for k in a)  # same settings, same weights
    assert Path(other).name == Path(backbone).name


def test_backbone_keeps_global_torch_state(cache):
    import torch
    torch.manual_seed(123); expected = torch.rand(3)
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    offline_backbone(cache_dir=cache, epochs=0, seed=1)
    assert torch.equal(torch.rand(3), expected) and torch.get_num_threads() == threads


def test_backbone_settings_change_folder(cache, backbone):
    assert offline_backbone(cache_dir=cache, epochs=0) != backbone


@pytest.mark.parametrize("kwargs, match", [
    (dict(epochs=-1), "epochs must be a non-negative int"),
    (dict(image_size=2), "image_size"),
    (dict(batch_size=0), "batch_size"),
    (dict(lr=0), "lr must be a finite number > 0"),
    (dict(batch_size=1), "batch norm needs at least 2"),
    (dict(holdout=0.7), "holdout"),
    (dict(arch="no_such_net"), "unknown timm architecture"),
    (dict(arch="hf-hub:timm/resnet18"), "arch must be a timm architecture name"),
    (dict(classes=(4,)), "at least 2"),
    (dict(num_threads=0), "num_threads"),
    (dict(resample="box"), "unknown resample"),
])
def test_backbone_bad_args(cache, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        offline_backbone(cache_dir=cache, **kwargs)
    assert not (Path(cache) / "backbones").exists() or not list((Path(cache) / "backbones").glob(".*"))


def test_backbone_warns_on_overlap(cache):
    with pytest.warns(UserWarning, match="also task classes"):
        offline_backbone(cache_dir=cache, epochs=0, classes=(3, 4, 5))


# ---- has_internet / shopee_dataset ----------------------------------------------------------------------------------

def test_has_internet_bounded(monkeypatch):
    import urllib.request

    def hang(*a, **k):
        time.sleep(30)
    monkeypatch.setattr(urllib.request, "urlopen", hang)
    t0 = time.perf_counter()
    assert has_internet(timeout=0.3) is False
    assert time.perf_counter() - t0 < 2


def test_has_internet_false_on_error(monkeypatch):
    import urllib.request

    def fail(*a, **k):
        raise OSError("no route")
    monkeypatch.setattr(urllib.request, "urlopen", fail)
    assert has_internet() is False


def test_has_internet_bad_timeout():
    with pytest.raises(ValueError, match="timeout"):
        has_internet(timeout=0)


def test_shopee_offline_message(monkeypatch, tmp_path):
    monkeypatch.setattr(data, "has_internet", lambda timeout=3.0: False)
    misc = pytest.importorskip("autogluon.multimodal.utils.misc")  # its download must not be called
    monkeypatch.setattr(misc, "shopee_dataset", lambda *a, **k: pytest.fail("tried to download"))
    with pytest.raises(ConnectionError) as e:
        shopee_dataset(tmp_path / "shopee_here")
    msg = str(e.value)
    assert "internet" in msg and "offline_dataset()" in msg and "offline_backbone()" in msg


def test_shopee_download_failure_is_clear(monkeypatch, tmp_path):
    "The download itself fails (no file.zip afterwards): a ConnectionError naming the address and the offline profile."
    monkeypatch.setattr(data, "has_internet", lambda timeout=3.0: True)
    misc = pytest.importorskip("autogluon.multimodal.utils.misc")

    def broken(download_dir, **k):
        raise OSError("connection reset")
    monkeypatch.setattr(misc, "shopee_dataset", broken)
    with pytest.raises(ConnectionError, match="needs internet.*offline_dataset") as e:
        shopee_dataset(tmp_path)
    assert isinstance(e.value.__cause__, OSError)


def _stand_in_download(monkeypatch, calls):
    "AutoGluon's downloader replaced by one that writes a good shopee archive, and, as AutoGluon's, only if none exists."
    loaders = pytest.importorskip("autogluon.common.loaders._utils")

    def download(url, path=None, overwrite=False, sha1_hash=None, **k):
        calls.append(url)
        Path(path).parent.mkdir(parents=True, exist_ok=True)  # as AutoGluon's does
        if not Path(path).exists():
            write_shopee_zip(path, train_per_class=3, test_per_class=(2, 2, 2, 2))
        return path
    monkeypatch.setattr(loaders, "download", download)


def test_shopee_reads_autogluons_layout(monkeypatch, tmp_path):
    "A good file.zip in the folder: AutoGluon's own loader reads it, with no download and no connection check."
    monkeypatch.setattr(data, "has_internet", lambda timeout=3.0: pytest.fail("checked the connection"))
    calls = []
    _stand_in_download(monkeypatch, calls)
    counts = write_shopee_zip(tmp_path / "file.zip", train_per_class=4, test_per_class=(3, 2, 2, 1))
    train, test = shopee_dataset(tmp_path)
    assert train["label"].value_counts().sort_index().to_dict() == counts["train"]
    assert test["label"].value_counts().sort_index().to_dict() == counts["test"]
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in [*train["image"], *test["image"]])
    assert calls == [data.SHOPEE_URL]  # AutoGluon's download step ran and kept the file (it exists)


def test_shopee_downloads_into_the_cache_not_the_working_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("FOCAL_TUTORIAL_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(data, "has_internet", lambda timeout=3.0: True)
    calls = []
    _stand_in_download(monkeypatch, calls)
    train, _ = shopee_dataset()
    folder = tmp_path / "cache" / "shopee"
    assert (folder / "file.zip").is_file() and calls == [data.SHOPEE_URL]
    assert all(Path(p).is_relative_to(folder) for p in train["image"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]  # nothing in the working directory


def test_shopee_damaged_zip_is_fetched_again(monkeypatch, tmp_path):
    "AutoGluon reuses any file.zip; a damaged one (half a download) is removed first and downloaded again."
    monkeypatch.setattr(data, "has_internet", lambda timeout=3.0: True)
    calls = []
    _stand_in_download(monkeypatch, calls)
    (tmp_path / "file.zip").write_bytes(b"PK\x03\x04 half a download")
    train, test = shopee_dataset(tmp_path)
    assert len(train) == 12 and len(test) == 8 and calls == [data.SHOPEE_URL]
    assert data._zip_problem(tmp_path / "file.zip") is None


@pytest.mark.parametrize("content", ["not a zip", "other zip"])
def test_shopee_damaged_zip_offline_says_so(monkeypatch, tmp_path, content):
    import zipfile
    monkeypatch.setattr(data, "has_internet", lambda timeout=3.0: False)
    misc = pytest.importorskip("autogluon.multimodal.utils.misc")
    monkeypatch.setattr(misc, "shopee_dataset", lambda *a, **k: pytest.fail("tried to download"))
    if content == "not a zip":
        (tmp_path / "file.zip").write_bytes(b"<html>proxy error</html>")
    else:
        with zipfile.ZipFile(tmp_path / "file.zip", "w") as z:
            z.writestr("other/train.csv", "image,label\n")
    with pytest.raises(ConnectionError, match="was removed: .*offline_dataset"):
        shopee_dataset(tmp_path)
    assert not (tmp_path / "file.zip").exists()


def test_shopee_interrupted_download_is_removed(monkeypatch, tmp_path):
    "The download leaves a truncated file.zip: a RuntimeError that says so, and the file is gone for the next call."
    monkeypatch.setattr(data, "has_internet", lambda timeout=3.0: True)
    loaders = pytest.importorskip("autogluon.common.loaders._utils")

    def truncated(url, path=None, **k):
        write_shopee_zip(path, train_per_class=2, test_per_class=(1, 1, 1, 1))
        Path(path).write_bytes(Path(path).read_bytes()[:300])
        return path
    monkeypatch.setattr(loaders, "download", truncated)
    with pytest.raises(RuntimeError, match="unusable: .*It was removed, so the next call downloads it again") as e:
        shopee_dataset(tmp_path)
    assert "internet" not in str(e.value) and not (tmp_path / "file.zip").exists()


def test_shopee_missing_autogluon_is_named(monkeypatch, tmp_path):
    "No AutoGluon (or an import that fails): the error names the import, not the network."
    import sys
    monkeypatch.setattr(data, "has_internet", lambda timeout=3.0: pytest.fail("checked the connection"))
    monkeypatch.setitem(sys.modules, "autogluon.multimodal.utils.misc", None)  # import raises ImportError
    with pytest.raises(ImportError, match="autogluon.multimodal does not import.*automm") as e:
        shopee_dataset(tmp_path)
    assert "internet" not in str(e.value)


def test_shopee_other_errors_are_not_blamed_on_the_network(monkeypatch, tmp_path):
    "A good archive, then an error of AutoGluon's own (a full disk while unzipping): raised as it is."
    monkeypatch.setattr(data, "has_internet", lambda timeout=3.0: True)
    misc = pytest.importorskip("autogluon.multimodal.utils.misc")
    write_shopee_zip(tmp_path / "file.zip", train_per_class=2, test_per_class=(1, 1, 1, 1))

    def full_disk(download_dir, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(misc, "shopee_dataset", full_disk)
    with pytest.raises(OSError, match="No space left") as e:
        shopee_dataset(tmp_path)
    assert not isinstance(e.value, ConnectionError) and (tmp_path / "file.zip").exists()


# ---- the cache keeps nothing broken and locks nobody out (regressions) -------------------------------------------

@pytest.mark.parametrize("lr", [float("inf"), float("nan"), True, "3e-3"])
def test_backbone_refuses_bad_lr_before_pretraining(tmp_path, lr):
    with pytest.raises((ValueError, TypeError), match="lr must be a finite number > 0"):
        offline_backbone(cache_dir=tmp_path, epochs=1, lr=lr)
    assert not (tmp_path / "backbones").exists()  # nothing pretrained, nothing cached


def test_backbone_that_diverges_is_not_cached(tmp_path):
    with pytest.raises(FloatingPointError, match="smaller lr"):
        offline_backbone(cache_dir=tmp_path, epochs=1, lr=1e30)
    assert list((tmp_path / "backbones").iterdir()) == []


def test_backbone_json_is_strict(backbone):
    info = json.loads((Path(backbone) / "pretraining.json").read_text(),
                      parse_constant=lambda c: pytest.fail(f"{c} in pretraining.json"))
    assert set(info["files"]) == {"config.json", "pytorch_model.bin"}
    assert "device" not in info  # CPU settings as before: the same folder, the same weights


def _weights(folder):
    import torch
    return torch.load(Path(folder) / "pytorch_model.bin", map_location="cpu")


@pytest.mark.parametrize("damage", ["missing", "truncated", "empty"])
def test_backbone_with_damaged_checkpoint_is_rebuilt(tmp_path, damage):
    import torch
    folder = Path(offline_backbone(cache_dir=tmp_path, epochs=0, seed=3))
    before = _weights(folder)
    ckpt = folder / "pytorch_model.bin"
    if damage == "missing":
        ckpt.unlink()  # an interrupted copy
    else:
        ckpt.write_bytes(ckpt.read_bytes()[:1000] if damage == "truncated" else b"")
    assert offline_backbone(cache_dir=tmp_path, epochs=0, seed=3) == str(folder)  # no "Directory not empty"
    after = _weights(folder)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [p.name for p in (tmp_path / "backbones").iterdir()] == [folder.name]  # nothing left beside it


@pytest.mark.parametrize("damage", [b"", b"\x89PNG\r\n\x1a\n"])
def test_damaged_png_is_rewritten(tmp_path, damage):
    train_df, _ = offline_dataset(cache_dir=tmp_path)
    p, other = Path(train_df["image"][0]), Path(train_df["image"][1])
    good, mtime = p.read_bytes(), other.stat().st_mtime_ns
    p.write_bytes(damage)
    again, _ = offline_dataset(cache_dir=tmp_path)
    assert again.equals(train_df) and p.read_bytes() == good
    with Image.open(p) as im:
        im.load()
    assert other.stat().st_mtime_ns == mtime  # intact files are not rewritten


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_cache_respects_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        train_df, _ = offline_dataset(cache_dir=tmp_path, test_per_class=5)
        folder = Path(offline_backbone(cache_dir=tmp_path, epochs=0, seed=5))
    finally:
        os.umask(old)
    png = Path(train_df["image"][0])
    assert png.stat().st_mode & 0o777 == 0o666 & ~umask
    assert folder.stat().st_mode & 0o777 == 0o777 & ~umask
    assert (folder / "pytorch_model.bin").stat().st_mode & 0o777 == 0o666 & ~umask


def test_partial_entries_of_dead_processes_are_removed(tmp_path):
    import socket
    import subprocess
    import sys
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()  # a process that has exited
    root = tmp_path / "backbones"
    root.mkdir()
    killed = root / f".partial-{socket.gethostname()}-{dead}-0000-resnet10t-32px-e0-s0-x"
    (killed / "sub").mkdir(parents=True)
    running = root / f".partial-{socket.gethostname()}-{os.getpid()}-0000-resnet10t-32px-e0-s0-y"
    running.mkdir()  # this process: a writer that may still be at work
    old = root / ".partial-elsewhere-1-0000-z"
    old.mkdir()
    os.utime(old, (0, 0))  # a day and more old: stale wherever it came from
    offline_backbone(cache_dir=tmp_path, epochs=0, seed=6)
    assert not killed.exists() and not old.exists() and running.exists()


def test_overlapping_torch_threads_restore_the_callers_setting():
    "Two overlapping blocks (A enters, B enters, A leaves, B leaves) leave torch on the thread count found before."
    import threading
    import torch
    before = torch.get_num_threads()
    target = 1 if before > 1 else 2
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

    def a():
        with data._torch_threads(target):
            a_in.set(); b_in.wait(5)
        a_out.set()

    def b():
        a_in.wait(5)
        with data._torch_threads(target):
            b_in.set(); a_out.wait(5)
    ts = [threading.Thread(target=f) for f in (a, b)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(10)
    assert torch.get_num_threads() == before


def test_pretrain_device_follows_cuda(monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert data._pretrain_device() == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert data._pretrain_device() == "cuda"

