"""Fitting the self-prompting pixel classifier: a one-epoch MONAI trainer around a closed-form fit.

The classifier is a logistic regression on the frozen embedding's pixels (scikit-learn's lbfgs on the
pixels of k annotated images). :class:`PixelClassifierFitter` is that fit as a MONAI ``Trainer``: one
epoch gathers the pixels of the training data, the end of the epoch fits, and the usual handlers
(validation, checkpoints, TensorBoard) run on it, so ``train.json`` and MONAI Label's ``/train`` drive it
like any other bundle's training. The fit is deterministic: further epochs would repeat it, so the
trainer stops after the first.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.data import DataLoader
from monai.engines import Trainer
from torch.utils.data import Dataset as TorchDataset
from tqdm import tqdm

from monai_sam.backbones import Letterbox
from monai_sam.data.errors import DataError
from monai_sam.engines.batches import prepare_image_batch
from monai_sam.networks import letterboxes_of
from monai_sam.selfprompt.network import SelfPromptNet

__all__ = [
    "PixelClassifierFitter",
    "choose_c",
    "embedding_grid_labels",
    "fit_pixel_classifier",
    "solve_pixel_classifier",
]

logger = logging.getLogger("monai_sam")


def embedding_grid_labels(label: torch.Tensor, original_size: tuple[int, int], input_size: int, grid: int):
    """Ground truth ``(1, H, W)`` -> labels ``(grid, grid)`` in the letterboxed embedding grid.

    The mask is resized *into the letterbox* (not stretched) at the embedding resolution; a cell is
    foreground when the mask covers at least half of it. Returns ``(labels, valid)``: ``valid`` is
    False in the padding, which the fit ignores.
    """
    frame = Letterbox(tuple(original_size), input_size)
    coverage = frame.mask_to_input(label[None].float(), size=grid)[0, 0]
    return (coverage >= 0.5), frame.valid_region(grid)


def pixel_samples(network: SelfPromptNet, images: torch.Tensor, labels: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Features ``(N, F)`` and 0/1 targets ``(N,)`` of the valid embedding pixels of a batch.

    ``images`` ``(B, 3, S, S)`` preprocessed (with their letterbox in the meta); ``labels`` at the
    original size, one ``(1, H, W)`` per image.
    """
    grid = network.backbone.embedding_size
    frames = letterboxes_of(images, network.backbone.input_size)
    with torch.no_grad():
        pixels = network.pixel_features(images)  # (B, F, h, w)
    features, targets = [], []
    for b, frame in enumerate(frames):
        label = torch.as_tensor(labels[b]).reshape(1, *frame.original_size)
        target, valid = embedding_grid_labels(label, frame.original_size, frame.input_size, grid)
        features.append(pixels[b].permute(1, 2, 0)[valid.to(pixels.device)].cpu().numpy())
        targets.append(target[valid].cpu().numpy())
    return np.concatenate(features), np.concatenate(targets)


def logistic_regression(c: float, class_weight: str | None, standardize: bool):
    """scikit-learn's logistic regression (lbfgs), after a per-feature ``StandardScaler`` when ``standardize``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = LogisticRegression(C=float(c), max_iter=2000, class_weight=class_weight)
    return make_pipeline(StandardScaler(), model) if standardize else model


def linear_weights(model) -> tuple[np.ndarray, np.ndarray]:
    """A fitted :func:`logistic_regression` -> weights ``(1, F)`` and bias ``(1,)`` on the raw features (a scaler's
    ``(x - mean) / scale`` folded in), so one 1x1 convolution reproduces its decision function."""
    if not hasattr(model, "steps"):
        return model.coef_, model.intercept_
    scaler, regression = model[0], model[-1]
    weight = regression.coef_ / scaler.scale_
    return weight, regression.intercept_ - weight @ scaler.mean_


def solve_pixel_classifier(
    network: SelfPromptNet, x: np.ndarray, y: np.ndarray, c: float = 1.0, class_weight: str | None = None
) -> dict[str, float]:
    """Fit ``network.classifier`` on pixels ``x (N, F)``, ``y (N,)``; returns pixels, foreground fraction, accuracy.

    Where the network asks for it (:attr:`~SelfPromptNet.standardize`), the fit runs on standardised features and
    the scaling is folded into the classifier's weights.

    Raises:
        DataError: no foreground pixel (the masks are empty, or too small to cover half an embedding
            cell) -- a classifier fitted on background alone would predict nothing.
    """
    y = y.astype(np.int64)
    if y.size == 0:
        raise DataError("no annotated pixel to fit on: the support images have no valid embedding cell")
    if not y.any():
        raise DataError(
            f"the support masks hold no foreground ({y.size} embedding pixels, all background): every mask is "
            "empty or smaller than half an embedding cell. Annotate images where the target is visible."
        )
    classifier = network.classifier
    if y.all():  # all foreground: a constant classifier, said so
        with torch.no_grad():
            classifier.weight.zero_()
            classifier.bias.fill_(10.0)
        logger.warning("every support pixel is foreground: the classifier predicts foreground everywhere")
        return {"pixels": int(y.size), "foreground_fraction": 1.0, "train_accuracy": 1.0}
    model = logistic_regression(c, class_weight, network.standardize)
    model.fit(x.astype(np.float64), y)
    weight, bias = linear_weights(model)
    with torch.no_grad():
        classifier.weight.copy_(torch.as_tensor(weight, dtype=torch.float32).reshape(classifier.weight.shape))
        classifier.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    return {
        "pixels": int(y.size),
        "foreground_fraction": float(y.mean()),
        "train_accuracy": float(model.score(x.astype(np.float64), y)),
    }


def choose_c(
    samples: list[tuple[np.ndarray, np.ndarray]],
    groups: list[str],
    candidates: Sequence[float],
    max_folds: int = 10,
    class_weight: str | None = None,
    standardize: bool = False,
) -> tuple[float, dict[float, float]]:
    """Pick the regularisation ``c`` from the support images alone: leave one group out.

    ``samples``: per support image, pixels ``(N_i, F)`` and 0/1 targets ``(N_i,)``; ``groups``: each image's
    video or patient (an image its own group where there are fewer than 3). For each candidate, a fit on
    the other groups' pixels predicts the held-out group's; the score is the Dice of that coarse mask on the
    embedding grid, averaged over held-out groups with foreground. More than ``max_folds`` groups (a large
    MONAI Label datastore) are dealt into ``max_folds`` folds, so the cost stays ``max_folds`` fits per
    candidate; ``class_weight`` and ``standardize`` are the fit's own (see :func:`solve_pixel_classifier`).
    Returns the best ``c`` (a tie goes to the candidate nearest 1 on a log scale, scikit-learn's default; so does
    a single support image, which leaves nothing to hold out) and every candidate's score.
    """
    from sklearn.metrics import f1_score  # F1 of the foreground class is its Dice

    nearest_default = min(candidates, key=lambda c: abs(np.log10(c)))
    if len(samples) < 2:  # one support image: nothing to hold out
        logger.warning("one support image: c cannot be chosen on held-out shots; using %s", nearest_default)
        return float(nearest_default), {float(c): float("nan") for c in candidates}
    if len(set(groups)) < 3:
        groups = [str(i) for i in range(len(samples))]
    fold_of = {name: i % max_folds for i, name in enumerate(sorted(set(groups)))}
    folds = [fold_of[g] for g in groups]
    scores: dict[float, float] = {}
    for c in candidates:
        dices = []
        for held in sorted(set(folds)):
            train = [s for s, f in zip(samples, folds, strict=True) if f != held]
            test = [s for s, f in zip(samples, folds, strict=True) if f == held]
            x, y = np.concatenate([s[0] for s in train]), np.concatenate([s[1] for s in train]).astype(np.int64)
            target = np.concatenate([s[1] for s in test]).astype(bool)
            if not target.any() or y.all() or not y.any():
                continue  # nothing to find in the held-out fold, or a one-class fit
            model = logistic_regression(c, class_weight, standardize)
            model.fit(x.astype(np.float64), y)
            predicted = model.decision_function(np.concatenate([s[0] for s in test]).astype(np.float64)) > 0
            dices.append(f1_score(target, predicted, zero_division=0.0))
        scores[float(c)] = float(np.mean(dices)) if dices else float("nan")
    if all(np.isnan(v) for v in scores.values()):
        raise DataError("cannot choose c: no held-out support image has foreground; give a single c")
    best = max(scores, key=lambda c: (np.nan_to_num(scores[c], nan=-1.0), -abs(np.log10(c))))
    return best, scores


def fit_pixel_classifier(
    network: SelfPromptNet, data: TorchDataset, c: float = 1.0, class_weight: str | None = None
) -> dict[str, float]:
    """Fit on a dataset that yields preprocessed items with a ``label`` (e.g. a MONAI ``CacheDataset`` subset).

    Only the classifier's weights change: the features come from the frozen, cached encoder.
    """
    loader = DataLoader(data, batch_size=1, num_workers=0)
    xs, ys = [], []
    for batch in tqdm(loader, desc="support images", leave=False, disable=len(data) < 5):
        if "label" not in batch:
            raise ValueError(f"support image {batch['image'].meta['filename_or_obj'][0]} has no mask")
        x, y = pixel_samples(network, batch["image"].to(network.backbone.device), batch["label"])
        xs.append(x)
        ys.append(y)
    return solve_pixel_classifier(network, np.concatenate(xs), np.concatenate(ys), c, class_weight)


class PixelClassifierFitter(Trainer):
    """A MONAI ``Trainer`` whose epoch gathers the embedding pixels of the training data and ends with the fit.

    Args:
        device: where the network runs.
        max_epochs: ignored beyond 1 (the closed-form fit is done after one epoch; MONAI Label asks for more).
        train_data_loader: labelled items (``image`` preprocessed, ``label`` at the original size).
        network: the :class:`SelfPromptNet` whose classifier is fitted.
        c: scikit-learn's ``LogisticRegression`` inverse regularisation strength, or several candidates, of
            which :func:`choose_c` picks one on the support images alone (leave one video out).
        class_weight: scikit-learn's ``LogisticRegression`` option.
        prepare_batch: MONAI's batch preparation (image, label).
        train_handlers: Ignite handlers (validation, checkpoints, stats), attached after the fit, so at
            ``EPOCH_COMPLETED`` they see the fitted classifier.

    ``engine.state.output`` holds ``loss`` = 0 (there is no loss to descend) and, after the epoch,
    ``engine.state.metrics`` the fit's pixel count, foreground fraction and training accuracy.
    """

    def __init__(
        self,
        device: torch.device | str,
        max_epochs: int,
        train_data_loader,
        network: SelfPromptNet,
        c: float | Sequence[float] = 1.0,
        class_weight: str | None = None,
        prepare_batch=prepare_image_batch,
        train_handlers=None,
        **kwargs,
    ) -> None:
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            data_loader=train_data_loader,
            prepare_batch=prepare_batch,
            handlers=None,
            **kwargs,
        )
        self.network = network
        self.c = c
        self.class_weight = class_weight
        self.samples: list[tuple[np.ndarray, np.ndarray]] = []
        self.groups: list[str] = []
        self.add_event_handler(Events.EPOCH_STARTED, self._reset)
        self.add_event_handler(Events.EPOCH_COMPLETED, self._fit)
        if train_handlers:
            for handler in train_handlers:
                handler.attach(self)

    def _reset(self, engine: Engine) -> None:
        self.samples, self.groups = [], []

    def _iteration(self, engine: Engine, batchdata: dict) -> dict:
        images, labels = self.prepare_batch(batchdata, self.state.device, self.non_blocking)
        if labels is None:
            source = images.meta["filename_or_obj"]
            raise ValueError(f"training image {source} has no mask; every support image needs one")
        self.samples.append(pixel_samples(self.network, images, labels))
        group = batchdata.get("group")
        self.groups.append(str(group[0]) if group is not None and len(images) == 1 else f"batch {len(self.groups)}")
        return {"image": images, "label": labels, "loss": torch.zeros(())}

    def _fit(self, engine: Engine) -> None:
        x = np.concatenate([s[0] for s in self.samples])
        y = np.concatenate([s[1] for s in self.samples])
        c = self.c
        if not isinstance(c, (int, float)):
            c, scores = choose_c(
                self.samples, self.groups, c, class_weight=self.class_weight, standardize=self.network.standardize
            )
            logger.info("c chosen on the support images (leave one video out, coarse Dice): %s -> %s", scores, c)
        summary = solve_pixel_classifier(self.network, x, y, float(c), self.class_weight)
        summary["c"] = float(c)
        engine.state.metrics.update(summary)
        logger.info("fitted the pixel classifier on %d pixels: %s", len(y), summary)
        if engine.state.max_epochs > engine.state.epoch:
            logger.info("the fit is closed-form: stopping after one epoch (max_epochs=%d)", engine.state.max_epochs)
            engine.terminate()
