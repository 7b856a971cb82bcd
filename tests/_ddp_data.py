"""The data, the model and the losses of tests/test_distributed.py, shared by the test and its ranks."""
import torch

from focal_tutorial.losses import focal_loss
from focal_tutorial.sigmoid import sigmoid_focal_loss

SHARDS = (torch.arange(0, 6), torch.arange(6, 16))  # uneven: rank 0 has 6 samples (4 ignored), rank 1 has 10 (1 ignored)
ALPHA = [0.2, 0.5, 0.3]


def batch():
    g = torch.Generator().manual_seed(0)
    features = torch.randn(16, 4, generator=g, dtype=torch.float64)
    target = torch.randint(0, 3, (16,), generator=g)
    target[[0, 1, 3, 4, 9]] = -100
    return features, target


def model():
    torch.manual_seed(1)
    return torch.nn.Linear(4, 3).double()


LOSSES = {
    "focal": lambda logits, y, sync: focal_loss(logits, y, ALPHA, 2.0, sync_count=sync),
    "sigmoid": lambda logits, y, sync: sigmoid_focal_loss(  # one-hot targets, ignored rows all negative
        logits, torch.nn.functional.one_hot(y.clamp_min(0), 3).double() * (y >= 0)[:, None], 0.25, 2.0,
        "mean_positive", sync_count=sync),
}
