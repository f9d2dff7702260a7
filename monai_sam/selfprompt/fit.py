"""Fitting the self-prompting pixel classifier on k annotated images (closed-form logistic regression)."""

from __future__ import annotations

import numpy as np
import torch
from monai.data import DataLoader, Dataset
from monai.transforms import Compose
from torch.utils.data import Dataset as TorchDataset
from tqdm import tqdm

from monai_sam.networks import letterboxes_of
from monai_sam.selfprompt.network import SelfPromptNet

__all__ = ["embedding_grid_labels", "fit_pixel_classifier"]


def embedding_grid_labels(label: torch.Tensor, original_size: tuple[int, int], input_size: int, grid: int):
    """Ground truth ``(1, H, W)`` -> labels ``(grid, grid)`` in the letterboxed embedding grid.

    The mask is resized *into the letterbox* (not stretched) at the embedding resolution; a cell is
    foreground when the mask covers at least half of it. Returns ``(labels, valid)``: ``valid`` is
    False in the padding, which the fit ignores.
    """
    from monai_sam.backbones import Letterbox

    frame = Letterbox(tuple(original_size), input_size)
    coverage = frame.mask_to_input(label[None].float(), size=grid)[0, 0]
    return (coverage >= 0.5), frame.valid_region(grid)


def fit_pixel_classifier(
    network: SelfPromptNet,
    items: list[dict] | TorchDataset,
    transform: Compose | None,
    c: float = 1.0,
    class_weight: str | None = None,
) -> dict[str, float]:
    """Fit ``network.classifier`` (logistic regression, scikit-learn's lbfgs) on the items' pixels.

    ``items``: datalist items loaded with ``transform``, or a dataset that already yields
    preprocessed items (e.g. a MONAI ``CacheDataset`` subset; ``transform`` is then unused).

    Only the classifier's weights change: the features come from the frozen, cached encoder, and
    scikit-learn sees nothing but them and the labels. Deterministic for the same items.

    Returns:
        a summary: pixels used, foreground fraction, training accuracy.
    """
    from sklearn.linear_model import LogisticRegression

    if not items:
        raise ValueError("fit_pixel_classifier needs at least one annotated image")
    grid = network.backbone.embedding_size
    features, labels = [], []
    dataset = items if isinstance(items, TorchDataset) else Dataset(items, transform)
    loader = DataLoader(dataset, batch_size=1, num_workers=0)
    for batch in tqdm(loader, desc="support images", leave=False, disable=len(items) < 5):
        if "label" not in batch:
            raise ValueError(f"support image {batch['image'].meta['filename_or_obj'][0]} has no mask")
        images = batch["image"].to(network.backbone.device)
        frame = letterboxes_of(images, network.backbone.input_size)[0]
        pixel = network.pixel_features(images)[0]  # (F, h, w)
        target, valid = embedding_grid_labels(batch["label"][0], frame.original_size, frame.input_size, grid)
        features.append(pixel.permute(1, 2, 0)[valid].cpu().numpy())
        labels.append(target[valid].cpu().numpy())
    x = np.concatenate(features).astype(np.float64)
    y = np.concatenate(labels).astype(np.int64)
    classifier = network.classifier
    if y.min() == y.max():  # all background (or all foreground): a constant classifier, said so
        with torch.no_grad():
            classifier.weight.zero_()
            classifier.bias.fill_(10.0 if y[0] else -10.0)
        return {"pixels": int(y.size), "foreground_fraction": float(y.mean()), "train_accuracy": 1.0}
    model = LogisticRegression(C=c, max_iter=2000, class_weight=class_weight)
    model.fit(x, y)
    with torch.no_grad():
        classifier.weight.copy_(torch.as_tensor(model.coef_, dtype=torch.float32).reshape(classifier.weight.shape))
        classifier.bias.copy_(torch.as_tensor(model.intercept_, dtype=torch.float32))
    return {"pixels": int(y.size), "foreground_fraction": float(y.mean()), "train_accuracy": float(model.score(x, y))}
