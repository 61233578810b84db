"""An eval-mode pass over a split: mean loss, top-1 and top-5 accuracy over every process's
shard, and, for observers that ask (rethink.observers), every example's predicted class, loss
and margin."""

from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rethink.memorization.record import margins as example_margins
from rethink.training.batches import Batch
from rethink.training.context import Context

TOP_K = 5  # top-5 accuracy, where a dataset has more than 5 classes


@dataclass
class Evaluation:
    n: int  # examples over every process
    loss: float  # mean cross-entropy
    correct: int  # top-1
    top5: int | None  # None where the dataset has TOP_K classes or fewer
    # Per example (with `examples=True`), in the order of `index`, over every process:
    index: torch.Tensor | None = None  # positions in the split
    predictions: torch.Tensor | None = None
    losses: torch.Tensor | None = None
    margins: torch.Tensor | None = None

    @property
    def accuracy(self) -> float:
        return self.correct / self.n

    @property
    def top5_accuracy(self) -> float:
        return float("nan") if self.top5 is None else self.top5 / self.n

    @property
    def all_correct(self) -> bool:
        return self.correct == self.n


@torch.inference_mode()
def evaluate(
    model: torch.nn.Module,
    batches: Iterable[Batch],
    context: Context,
    n_classes: int,
    examples: bool = False,
) -> Evaluation:
    model.eval()
    totals = torch.zeros(3, dtype=torch.float64, device=context.device)  # loss, top-1, top-5
    n = 0
    kept = {"index": [], "predictions": [], "losses": [], "margins": []}
    # One autocast region for the whole pass: it casts each weight to bfloat16 once, not once a
    # batch (the weights do not change here; in training they change every step).
    with context.autocast():
        for batch in batches:
            logits = model(batch.x).float()
            losses = F.cross_entropy(logits, batch.y, reduction="none")
            predictions = logits.argmax(dim=1)
            top = logits.topk(min(TOP_K, n_classes), dim=1).indices
            totals += torch.stack([
                losses.sum(dtype=torch.float64), (predictions == batch.y).sum().double(),
                (top == batch.y[:, None]).any(dim=1).sum().double(),
            ])  # fmt: skip
            n += len(batch.y)
            if examples:
                kept["index"].append(batch.index)
                kept["predictions"].append(predictions)
                kept["losses"].append(losses)
                kept["margins"].append(example_margins(logits, batch.y))
    counted = torch.cat([totals, torch.tensor([n], dtype=torch.float64, device=context.device)])
    loss, correct, top5, n = context.sum(counted).tolist()  # one device sync per evaluation
    evaluation = Evaluation(
        int(n), loss / n, int(correct), int(top5) if n_classes > TOP_K else None
    )
    if examples:
        for name, parts in kept.items():
            setattr(evaluation, name, context.gather(torch.cat(parts)))
    return evaluation
