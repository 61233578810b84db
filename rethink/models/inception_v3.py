"""ImageNet's model (Zhang et al. 2017, Table 2): torchvision's Inception V3, from scratch,
without the auxiliary head (TF-slim's training adds its loss at weight 0.4; the paper does not
say): 23,834,568 parameters for 1,000 classes. Inputs of at least 75x75; the paper's are
299x299."""

from torch import nn
from torchvision.models import inception_v3 as torchvision_inception_v3


def inception_v3(input_shape, n_classes: int, dropout: float = 0.0) -> nn.Module:
    """input_shape (C, H, W) is not needed: the network pools globally before its classifier."""
    return torchvision_inception_v3(
        weights=None, num_classes=n_classes, aux_logits=False, init_weights=True, dropout=dropout
    )
