"""The moving average of the weights against TF's ExponentialMovingAverage written out."""

import torch

from rethink.training.averaging import WeightAverage


def test_the_average_follows_tfs_moving_average_with_num_updates():
    """shadow starts at the initial weights; after step t, shadow = d * shadow + (1 - d) * w
    with d = min(decay, (1 + t) / (10 + t)): parameters and batch norm's running statistics
    averaged, its step counter copied."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    average = WeightAverage(model, decay=0.5)
    shadow = {k: v.clone().double() for k, v in model.state_dict().items()}
    for step in range(4):
        model.train()(torch.randn(8, 3))  # moves the running statistics and the counter
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        average.update(step)
        d = min(0.5, (1 + step) / (10 + step))  # 0.1, 0.18, 0.25, 0.31: below 0.5 throughout
        for name, value in model.state_dict().items():
            if value.is_floating_point():
                shadow[name] = d * shadow[name] + (1 - d) * value.double()
    for name, value in average.model.state_dict().items():
        if name.endswith("num_batches_tracked"):
            assert value == model.state_dict()[name] == 4
        else:
            torch.testing.assert_close(value.double(), shadow[name], rtol=1e-6, atol=1e-7)
    assert not any(p.requires_grad for p in average.model.parameters())


def test_the_decay_reaches_its_cap_after_the_warmup():
    model = torch.nn.Linear(1, 1, bias=False)
    average = WeightAverage(model, decay=0.9)
    torch.nn.init.zeros_(average.model.weight)
    torch.nn.init.ones_(model.weight)
    average.update(1000)  # (1 + 1000) / 1010 > 0.9: the decay is 0.9
    assert average.model.weight.item() == torch.tensor(0.1).item()
