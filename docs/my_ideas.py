"""Your own ideas, in a file of your own: a loss and a callback registered by name, and two recipes that name them.

    toolkit list --experiments docs/my_ideas.py
    toolkit run focal_loss grad_centralization --experiments docs/my_ideas.py --dataset digits --seeds 3
"""
import torch
import torch.nn.functional as F
from fastai.callback.core import Callback

import toolkit


class FocalLoss(torch.nn.Module):
    """Focal loss (Lin et al. 2017, arXiv:1708.02002): cross-entropy scaled by (1 - p)^gamma, so that the examples
    the model already gets right weigh less. `reduction` as torch's losses have it, so MixUp can mix it."""
    def __init__(self, gamma: float = 2.0, reduction: str = "mean"):
        super().__init__()
        self.gamma, self.reduction = gamma, reduction

    def forward(self, pred, target):
        ce = F.cross_entropy(pred.float(), target, reduction="none")
        loss = (1 - torch.exp(-ce)) ** self.gamma * ce
        return loss.mean() if self.reduction == "mean" else loss.sum() if self.reduction == "sum" else loss


@toolkit.register_loss("focal")
def focal(gamma: float = 2.0):
    return FocalLoss(gamma)


class GradientCentralization(Callback):
    """Gradient centralization (Yong et al. 2020, arXiv:2004.01461): every conv and linear weight's gradient minus
    its mean over all but the output dimension, after each backward pass."""
    def after_backward(self):
        for p in self.learn.model.parameters():
            if p.grad is not None and p.grad.dim() > 1:
                p.grad.sub_(p.grad.mean(dim=tuple(range(1, p.grad.dim())), keepdim=True))


@toolkit.register_callback("grad_centralization")
def grad_centralization():
    return GradientCentralization()


NORMALIZE = toolkit.get("normalize")
toolkit.register(toolkit.derive(NORMALIZE, "focal_loss", loss="focal(gamma=2.0)",
                                notes="focal loss, gamma 2 (arXiv:1708.02002)"))
toolkit.register(toolkit.derive(NORMALIZE, "grad_centralization", callbacks=("grad_centralization",),
                                notes="gradient centralization (arXiv:2004.01461)"))
