"""A small stand-in for AutoGluon's shopee archive, in AutoGluon's layout, for tests that must not download.

`file.zip` holds `shopee/train.csv` and `shopee/test.csv` (columns `image,label`, labels 0-3, image paths relative
to `shopee/`) and the JPEG files under `shopee/images/`, as the archive at `focal_tutorial.shopee.SHOPEE_URL` does.
AutoGluon's `shopee_dataset` unzips it and expands the paths; nothing here imitates that code."""
import io
import zipfile

import numpy as np

CLASSES = (0, 1, 2, 3)


def write_shopee_zip(
    path,  # the file to write (AutoGluon's name for it is file.zip)
    train_per_class: int = 28,  # keeps every class under make_imbalanced(factor=1/3): 28, 9, 3, 1 (27 * (1/3)**3 < 1 in floats)
    test_per_class=(5, 4, 4, 3),  # an imbalanced test set, so the page's prose cannot assume a balanced one
    size: int = 32,
    seed: int = 0,
    repeat: int = 1,  # rows per image in the tables: a large table from a small archive (for the tests of races)
    image_dir: str = "images",  # the images' folder inside shopee/ (a long name makes long rows)
) -> dict:  # {"train": counts per class, "test": counts per class} (rows, so `repeat` times the images)
    "Write a shopee-like archive: one colour per class plus noise, so a model can learn it."
    from PIL import Image
    rng = np.random.default_rng(seed)
    colours = np.array([[220, 40, 40], [40, 200, 40], [40, 40, 220], [200, 200, 40]], dtype=float)
    counts = {"train": {c: train_per_class for c in CLASSES}, "test": dict(zip(CLASSES, test_per_class))}
    with zipfile.ZipFile(path, "w") as z:
        for split, per_class in counts.items():
            rows = ["image,label"]
            for c, n in per_class.items():
                for i in range(n):
                    pixels = np.clip(colours[c] + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
                    buf = io.BytesIO()
                    Image.fromarray(pixels).save(buf, format="JPEG")
                    name = f"{image_dir}/{split}_{c}_{i:03d}.jpg"
                    z.writestr(f"shopee/{name}", buf.getvalue())
                    rows.extend([f"{name},{c}"] * repeat)
            z.writestr(f"shopee/{split}.csv", "\n".join(rows) + "\n")
    return {split: {c: n * repeat for c, n in per_class.items()} for split, per_class in counts.items()}
