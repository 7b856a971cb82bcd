"""Tests of the tutorial's data: the digits split and the PNG dataset (focal_tutorial.data), the local backbone
(focal_tutorial.backbone), the shopee error path (focal_tutorial.shopee), and the cache and threads they share
(focal_tutorial._machine)."""
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from focal_tutorial.core import make_imbalanced
from focal_tutorial import _machine, backbone as backbone_module, data, shopee
from focal_tutorial.backbone import offline_backbone
from focal_tutorial.data import DIGIT_CLASSES, PRETRAIN_CLASSES, default_cache_dir, digits_split, offline_dataset
from focal_tutorial.shopee import has_internet, shopee_dataset
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


def _no_download(monkeypatch):
    "AutoGluon's downloader replaced by one that fails the test: nothing may be fetched."
    loaders = pytest.importorskip("autogluon.common.loaders._utils")
    monkeypatch.setattr(loaders, "download", lambda *a, **k: pytest.fail("tried to download"))


def test_shopee_offline_message(monkeypatch, tmp_path):
    monkeypatch.setattr(shopee, "has_internet", lambda timeout=3.0: False)
    _no_download(monkeypatch)
    with pytest.raises(ConnectionError) as e:
        shopee_dataset(tmp_path / "shopee_here")
    msg = str(e.value)
    assert "internet" in msg and "offline_dataset()" in msg and "offline_backbone()" in msg


def test_shopee_download_failure_is_clear(monkeypatch, tmp_path):
    "The download itself fails (no archive afterwards): a ConnectionError naming the address and the offline profile."
    monkeypatch.setattr(shopee, "has_internet", lambda timeout=3.0: True)
    loaders = pytest.importorskip("autogluon.common.loaders._utils")

    def broken(url, path=None, **k):
        raise OSError("connection reset")
    monkeypatch.setattr(loaders, "download", broken)
    with pytest.raises(ConnectionError, match="needs internet.*offline_dataset") as e:
        shopee_dataset(tmp_path)
    assert isinstance(e.value.__cause__, OSError)


def _stand_in_download(monkeypatch, calls, archive=None):
    "AutoGluon's downloader replaced by one that writes a shopee archive (`archive(path)`, else a good one), and, as AutoGluon's, only if none exists."
    loaders = pytest.importorskip("autogluon.common.loaders._utils")

    def download(url, path=None, overwrite=False, sha1_hash=None, **k):
        calls.append(url)
        Path(path).parent.mkdir(parents=True, exist_ok=True)  # as AutoGluon's does
        if not Path(path).exists():
            if archive:
                archive(path)
            else:
                write_shopee_zip(path, train_per_class=3, test_per_class=(2, 2, 2, 2))
        return path
    monkeypatch.setattr(loaders, "download", download)


def _entries(folder):
    return sorted(p.name for p in Path(folder).iterdir())


def test_shopee_reads_autogluons_layout(monkeypatch, tmp_path):
    "A good file.zip in the folder (AutoGluon's name): read as the source, with no download and no connection check."
    monkeypatch.setattr(shopee, "has_internet", lambda timeout=3.0: pytest.fail("checked the connection"))
    calls = []
    _stand_in_download(monkeypatch, calls)
    counts = write_shopee_zip(tmp_path / "file.zip", train_per_class=4, test_per_class=(3, 2, 2, 1))
    train, test = shopee_dataset(tmp_path)
    assert train["label"].value_counts().sort_index().to_dict() == counts["train"]
    assert test["label"].value_counts().sort_index().to_dict() == counts["test"]
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in [*train["image"], *test["image"]])
    assert calls == [] and not (tmp_path / shopee._SHOPEE_OWN).exists()  # nothing downloaded beside it


def test_shopee_returns_what_autogluons_loader_returns(monkeypatch, tmp_path):
    "The same DataFrames as AutoGluon's own loader on the same folder: columns, absolute paths, dtypes."
    import pandas as pd
    misc = pytest.importorskip("autogluon.multimodal.utils.misc")
    _stand_in_download(monkeypatch, [])
    write_shopee_zip(tmp_path / "file.zip", train_per_class=3, test_per_class=(2, 1, 1, 1))
    ours = shopee_dataset(tmp_path)
    theirs = misc.shopee_dataset(str(tmp_path))  # unzips file.zip over shopee/ again, then reads it
    for a, b in zip(ours, theirs):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert list(ours[0].columns) == ["image", "label"] and str(ours[0]["label"].dtype) == "int64"


def test_shopee_downloads_into_the_cache_not_the_working_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("FOCAL_TUTORIAL_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(shopee, "has_internet", lambda timeout=3.0: True)
    calls = []
    _stand_in_download(monkeypatch, calls)
    train, _ = shopee_dataset()
    folder = tmp_path / "cache" / "shopee"
    assert (folder / shopee._SHOPEE_OWN).is_file() and calls == [shopee.SHOPEE_URL]
    assert all(Path(p).is_relative_to(folder) for p in train["image"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]  # nothing in the working directory


def test_shopee_damaged_own_archive_is_fetched_again(monkeypatch, tmp_path):
    "A damaged archive of the package's own (half a download) is removed first and downloaded again."
    monkeypatch.setattr(shopee, "has_internet", lambda timeout=3.0: True)
    calls = []
    _stand_in_download(monkeypatch, calls)
    (tmp_path / shopee._SHOPEE_OWN).write_bytes(b"PK\x03\x04 half a download")
    train, test = shopee_dataset(tmp_path)
    assert len(train) == 12 and len(test) == 8 and calls == [shopee.SHOPEE_URL]
    assert shopee._zip_problem(tmp_path / shopee._SHOPEE_OWN) is None


def _write_foreign(path, content):
    "A file.zip that is not a shopee archive: a proxy's error page, or another dataset's AutoGluon download."
    import zipfile
    if content == "not a zip":
        path.write_bytes(b"<html>proxy error</html>")
    else:
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("other/train.csv", "image,label\n")


@pytest.mark.parametrize("content", ["not a zip", "other dataset"])
def test_shopee_keeps_a_foreign_file_zip(monkeypatch, tmp_path, content):
    "A file.zip that is no shopee archive is not the package's to delete: left as it is, and shopee downloaded beside it."
    monkeypatch.setattr(shopee, "has_internet", lambda timeout=3.0: True)
    calls = []
    _stand_in_download(monkeypatch, calls)
    _write_foreign(tmp_path / "file.zip", content)
    before = (tmp_path / "file.zip").read_bytes()
    train, _ = shopee_dataset(tmp_path)
    assert (tmp_path / "file.zip").read_bytes() == before
    assert len(train) == 12 and calls == [shopee.SHOPEE_URL] and (tmp_path / shopee._SHOPEE_OWN).is_file()


@pytest.mark.parametrize("content", ["not a zip", "other dataset"])
def test_shopee_offline_keeps_a_foreign_file_zip_and_says_so(monkeypatch, tmp_path, content):
    monkeypatch.setattr(shopee, "has_internet", lambda timeout=3.0: False)
    _no_download(monkeypatch)
    _write_foreign(tmp_path / "file.zip", content)
    before = (tmp_path / "file.zip").read_bytes()
    with pytest.raises(ConnectionError, match="file.zip is no shopee archive: .*; it was left as it is.*offline_dataset"):
        shopee_dataset(tmp_path)
    assert (tmp_path / "file.zip").read_bytes() == before


def test_shopee_damaged_own_archive_offline_says_so(monkeypatch, tmp_path):
    "Offline, a damaged archive of the package's own is removed all the same, and the error says so."
    monkeypatch.setattr(shopee, "has_internet", lambda timeout=3.0: False)
    _no_download(monkeypatch)
    (tmp_path / shopee._SHOPEE_OWN).write_bytes(b"<html>proxy error</html>")
    with pytest.raises(ConnectionError, match="was removed: it is not a readable zip.*offline_dataset"):
        shopee_dataset(tmp_path)
    assert not (tmp_path / shopee._SHOPEE_OWN).exists()


def test_shopee_interrupted_download_is_removed(monkeypatch, tmp_path):
    "The download leaves a truncated archive: a RuntimeError that says so, and the file is gone for the next call."
    monkeypatch.setattr(shopee, "has_internet", lambda timeout=3.0: True)
    loaders = pytest.importorskip("autogluon.common.loaders._utils")

    def truncated(url, path=None, **k):
        write_shopee_zip(path, train_per_class=2, test_per_class=(1, 1, 1, 1))
        Path(path).write_bytes(Path(path).read_bytes()[:300])
        return path
    monkeypatch.setattr(loaders, "download", truncated)
    with pytest.raises(RuntimeError, match="unusable: .*It was removed, so the next call downloads it again") as e:
        shopee_dataset(tmp_path)
    assert "internet" not in str(e.value) and not (tmp_path / shopee._SHOPEE_OWN).exists()


def test_shopee_missing_autogluon_is_named(monkeypatch, tmp_path):
    "No AutoGluon (or an import that fails): the error names the import, not the network."
    import sys
    monkeypatch.setattr(shopee, "has_internet", lambda timeout=3.0: pytest.fail("checked the connection"))
    monkeypatch.setitem(sys.modules, "autogluon.multimodal.utils.misc", None)  # import raises ImportError
    with pytest.raises(ImportError, match="autogluon.multimodal does not import.*automm") as e:
        shopee_dataset(tmp_path)
    assert "internet" not in str(e.value)


def test_shopee_download_dir_that_is_a_file(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="download_dir .*notes.txt is a file; pass a folder"):
        shopee_dataset(tmp_path / "notes.txt")
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_shopee_other_errors_are_not_blamed_on_the_network(monkeypatch, tmp_path):
    "A good archive, then an error of its own (a full disk while unzipping): raised as it is, nothing left half done."
    monkeypatch.setattr(shopee, "has_internet", lambda timeout=3.0: True)
    unpack = pytest.importorskip("autogluon.common.loaders.load_archive")
    write_shopee_zip(tmp_path / "file.zip", train_per_class=2, test_per_class=(1, 1, 1, 1))

    def full_disk(path, dest_dir):
        Path(dest_dir, "shopee").mkdir()
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(unpack, "safe_unpack_archive", full_disk)
    with pytest.raises(OSError, match="No space left") as e:
        shopee_dataset(tmp_path)
    assert not isinstance(e.value, ConnectionError) and (tmp_path / "file.zip").exists()
    assert [n for n in _entries(tmp_path) if not n.startswith(".focal_tutorial")] == ["file.zip"]


# ---- shopee: extracted once, by one process at a time; bad archives refused (regressions) -------------------------

def _call_until(folder, start, out, seconds, k):
    "In a child process: wait for the other one, then call shopee_dataset until `seconds` pass or a table comes back short; report the table sizes."
    sizes = []
    try:
        start.wait(30)
        t0 = time.perf_counter()
        while not sizes or (time.perf_counter() - t0 < seconds and sizes[-1] == sizes[0]):
            time.sleep(0.004 * (len(sizes) * (k + 2) % 7))  # the two processes drift against each other
            sizes.append(tuple(len(df) for df in shopee_dataset(folder)))
    except BaseException as e:  # reported, so the test shows it (pytest.fail raises a BaseException)
        sizes.append(f"{type(e).__name__}: {e}")
    out.put(sizes)


def _two_processes(folder, seconds):
    "What `_call_until` reported in each of two forked processes that call shopee_dataset on `folder` at once."
    import multiprocessing
    ctx = multiprocessing.get_context("fork")  # the children start with AutoGluon and the test's stand-ins loaded
    start, out = ctx.Barrier(2), ctx.Queue()
    children = [ctx.Process(target=_call_until, args=(folder, start, out, seconds, k)) for k in range(2)]
    for p in children:
        p.start()
    results = [out.get(timeout=60) for _ in children]
    for p in children:
        p.join(30)
    return results


BIG = dict(train_per_class=1, test_per_class=(1, 1, 1, 1), repeat=1250,  # 5,000 rows of 200 characters, 8 images
           image_dir="images/" + "long-folder-name-" * 11)


def test_shopee_two_processes_get_the_full_table(monkeypatch, tmp_path):
    "Two processes call shopee_dataset on one folder at once, again and again: each gets every row, every time."
    pytest.importorskip("autogluon.multimodal.utils.misc")  # imported here once: the forked children start at once
    _stand_in_download(monkeypatch, [])  # never called here: file.zip is there
    write_shopee_zip(tmp_path / "file.zip", **BIG)
    for sizes in _two_processes(tmp_path, seconds=3):
        assert set(sizes) == {(5000, 5000)}


def test_shopee_two_processes_download_once(monkeypatch, tmp_path):
    "Two processes call shopee_dataset on an empty folder at once: one downloads and extracts, both get every row."
    pytest.importorskip("autogluon.multimodal.utils.misc")
    monkeypatch.setattr(shopee, "has_internet", lambda timeout=3.0: True)
    log = tmp_path / "downloads.log"

    def write(path):  # not atomic, unlike AutoGluon's: only the lock keeps the other process from reading it half written
        with open(log, "a") as f:
            f.write("downloaded\n")
        write_shopee_zip(path, **BIG)
    _stand_in_download(monkeypatch, [], archive=write)
    assert _two_processes(tmp_path / "shopee", seconds=0) == [[(5000, 5000)]] * 2
    assert log.read_text() == "downloaded\n"


def test_shopee_edit_to_the_extracted_table_survives(monkeypatch, tmp_path):
    "The archive is extracted once: a later call reads shopee/train.csv as it is, with a user's edit in it."
    _stand_in_download(monkeypatch, [])
    write_shopee_zip(tmp_path / "file.zip", train_per_class=3, test_per_class=(2, 2, 2, 2))
    train, _ = shopee_dataset(tmp_path)
    table = tmp_path / "shopee" / "train.csv"
    edited = table.read_text() + table.read_text().splitlines()[1] + "\n"  # the first row twice
    table.write_text(edited)
    again, _ = shopee_dataset(tmp_path)
    assert table.read_text() == edited
    assert len(again) == len(train) + 1 and again.iloc[-1].equals(train.iloc[0])


def _damaged_zip(damage):
    "A stand-in archive with one fault (`damage`), written by `archive(path)`, and the words that must name it."
    import io
    import zipfile
    buf = io.BytesIO()
    write_shopee_zip(buf, train_per_class=3, test_per_class=(2, 2, 2, 2))  # rows 1-3 class 0, 4-6 class 1, ...
    members = {i.filename: zipfile.ZipFile(buf).read(i) for i in zipfile.ZipFile(buf).infolist()}
    lines = members["shopee/train.csv"].decode().splitlines()
    table, expected = "shopee/train.csv", None
    if damage == "empty table":
        members[table], expected = b"", "shopee/train.csv is empty"
    elif damage == "header only":
        members[table], expected = b"image,label\n", "shopee/train.csv has no rows"
    elif damage == "empty test table":
        members["shopee/test.csv"], expected = b"image,label\n", "shopee/test.csv has no rows"
    elif damage == "no label column":
        members[table] = "\n".join(line.split(",")[0] for line in lines).encode()
        expected = "shopee/train.csv has no column 'label'"
    elif damage == "empty image cell":
        lines[2] = "," + lines[2].split(",")[1]
        expected = "shopee/train.csv row 2: its image cell is empty"
    elif damage == "empty label cell":
        lines[5] = lines[5].split(",")[0] + ","
        expected = "shopee/train.csv row 5: its label cell is empty"
    elif damage == "missing image":
        del members["shopee/images/train_1_000.jpg"]
        expected = "shopee/train.csv row 4: its image images/train_1_000.jpg is not there"
    elif damage == "class missing from train":
        lines = [line for line in lines if not line.endswith(",3")]
        expected = "shopee/train.csv has no row of class 3, which shopee/test.csv has"
    if damage in ("empty image cell", "empty label cell", "class missing from train"):
        members[table] = ("\n".join(lines) + "\n").encode()

    def archive(path):
        with zipfile.ZipFile(path, "w") as z:
            for name, content in members.items():
                z.writestr(name, content)
    return archive, expected


DAMAGES = ["empty table", "header only", "empty test table", "no label column", "empty image cell", "empty label cell",
           "missing image", "class missing from train"]


@pytest.mark.parametrize("damage", DAMAGES)
def test_shopee_refuses_a_bad_download_and_removes_it(monkeypatch, tmp_path, damage):
    "A downloaded archive with a bad table or a missing image: refused with the file and row named, removed, nothing extracted."
    monkeypatch.setattr(shopee, "has_internet", lambda timeout=3.0: True)
    archive, expected = _damaged_zip(damage)
    _stand_in_download(monkeypatch, [], archive=archive)
    with pytest.raises(RuntimeError, match="unusable") as e:
        shopee_dataset(tmp_path)
    msg = str(e.value)
    assert expected in msg and str(tmp_path / shopee._SHOPEE_OWN) in msg
    assert "It was removed, so the next call downloads it again" in msg and "internet" not in msg
    assert [n for n in _entries(tmp_path) if not n.startswith(".focal_tutorial")] == []  # no archive, no shopee/


def test_shopee_bad_download_is_fetched_again_on_the_next_call(monkeypatch, tmp_path):
    monkeypatch.setattr(shopee, "has_internet", lambda timeout=3.0: True)
    calls = []
    _stand_in_download(monkeypatch, calls, archive=_damaged_zip("missing image")[0])
    with pytest.raises(RuntimeError, match="missing|not there"):
        shopee_dataset(tmp_path)
    _stand_in_download(monkeypatch, calls)  # the server's archive is good again
    train, test = shopee_dataset(tmp_path)
    assert len(train) == 12 and len(test) == 8 and calls == [shopee.SHOPEE_URL] * 2


def test_shopee_refuses_a_bad_file_zip_and_keeps_it(monkeypatch, tmp_path):
    "A file.zip in shopee's layout with a missing image: refused with its path named, and left as it is (not the package's)."
    monkeypatch.setattr(shopee, "has_internet", lambda timeout=3.0: pytest.fail("checked the connection"))
    _no_download(monkeypatch)
    archive, expected = _damaged_zip("missing image")
    archive(tmp_path / "file.zip")
    before = (tmp_path / "file.zip").read_bytes()
    with pytest.raises(RuntimeError, match="unusable") as e:
        shopee_dataset(tmp_path)
    assert expected in str(e.value) and str(tmp_path / "file.zip") in str(e.value) and "left as it is" in str(e.value)
    assert (tmp_path / "file.zip").read_bytes() == before and not (tmp_path / "shopee").exists()


def test_shopee_checks_the_extracted_tables_on_every_call(monkeypatch, tmp_path):
    "An image removed from the extracted folder later: the next call names the row instead of returning it silently."
    _stand_in_download(monkeypatch, [])
    write_shopee_zip(tmp_path / "file.zip", train_per_class=3, test_per_class=(2, 2, 2, 2))
    shopee_dataset(tmp_path)
    (tmp_path / "shopee" / "images" / "test_2_001.jpg").unlink()
    with pytest.raises(RuntimeError, match=r"shopee/test.csv row 6: its image images/test_2_001.jpg is not there"):
        shopee_dataset(tmp_path)
    assert (tmp_path / "shopee" / "test.csv").is_file()  # the folder is left for the user to fix or remove


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
        with _machine._TorchThreads(target):
            a_in.set(); b_in.wait(5)
        a_out.set()

    def b():
        a_in.wait(5)
        with _machine._TorchThreads(target):
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
    assert backbone_module._pretrain_device() == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert backbone_module._pretrain_device() == "cuda"



# ---- the four modules: each imports alone, in the order _machine <- data <- backbone, _machine <- shopee ----------

@pytest.mark.parametrize("module, allowed", [
    ("_machine", set()),
    ("data", {"_checks", "_machine", "core"}),
    ("backbone", {"_checks", "_machine", "core", "data"}),
    ("shopee", {"_checks", "_machine"}),
])
def test_modules_import_alone_without_torch(module, allowed):
    import subprocess
    import sys
    code = (f"import sys, focal_tutorial.{module}; "
            "print(sorted(m.split('.')[1] for m in sys.modules if m.startswith('focal_tutorial.')), "
            "'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"{sorted(allowed | {module})} False"


def test_data_reexports_the_cache_folder():
    assert data.default_cache_dir is _machine.default_cache_dir and "default_cache_dir" in data.__all__
