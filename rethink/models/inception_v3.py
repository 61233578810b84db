"""ImageNet's model (Zhang et al. 2017, Table 2): torchvision's Inception V3, from scratch:
23,834,568 parameters for 1,000 classes. With `aux_logits`, the auxiliary head on Mixed_6e that
TF's Inception recipe trains (its loss at weight 0.4: training.aux_loss_weight), which gives
(logits, auxiliary logits) in training and only the logits in evaluation. Inputs of at least
75x75 (with the auxiliary head, 299x299); the paper's are 299x299."""

from torch import nn
from torchvision.models import inception_v3 as torchvision_inception_v3


def inception_v3(
    input_shape, n_classes: int, dropout: float = 0.0, aux_logits: bool = False
) -> nn.Module:
    """input_shape (C, H, W) is not needed: the network pools globally before its classifier."""
    return torchvision_inception_v3(
        weights=None, num_classes=n_classes, aux_logits=aux_logits, init_weights=True,
        dropout=dropout,
    )  # fmt: skip
