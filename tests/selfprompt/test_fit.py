"""The pixel classifier's fit: only the classifier changes, letterboxed labels, a one-epoch MONAI trainer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import DataLoader, Dataset

from monai_sam.data import load_and_preprocess, make_datalist
from monai_sam.engines import FrozenBackboneCheck
from monai_sam.selfprompt import PixelClassifierFitter, SelfPromptNet, embedding_grid_labels, fit_pixel_classifier
from monai_sam.selfprompt.fit import choose_c, solve_pixel_classifier


def test_fit_changes_only_the_classifier(tiny_backbone, sample_polyp):
    network = SelfPromptNet(tiny_backbone)
    frozen_before = {k: v.clone() for k, v in tiny_backbone.state_dict().items()}
    head_before = network.classifier.weight.clone()
    summary = fit_pixel_classifier(
        network, Dataset(make_datalist(sample_polyp)[:4], load_and_preprocess(tiny_backbone))
    )
    assert summary["pixels"] > 0 and 0 < summary["foreground_fraction"] < 1
    assert all(torch.equal(frozen_before[k], v) for k, v in tiny_backbone.state_dict().items())
    assert not torch.equal(head_before, network.classifier.weight)
    assert list(network.state_dict()) == ["classifier.weight", "classifier.bias"]


def test_labels_are_letterboxed_into_the_embedding_grid():
    label = torch.zeros(1, 100, 200)
    label[:, :, 150:] = 1  # right quarter of a wide image
    labels, valid = embedding_grid_labels(label, (100, 200), input_size=64, grid=8)
    assert valid[:4].all() and not valid[4:].any()  # the image fills the top 4 of 8 rows
    assert labels[:4, 6:].all() and not labels[:4, :5].any() and not labels[4:].any()


def test_masks_without_foreground_are_refused_not_fitted(tiny_backbone):
    network = SelfPromptNet(tiny_backbone)
    with pytest.raises(ValueError, match="no foreground.*empty"):
        solve_pixel_classifier(network, np.zeros((50, 32)), np.zeros(50))
    assert float(network.classifier.weight.abs().sum()) == 0.0  # untouched


def test_the_fitter_is_a_one_epoch_trainer_that_fits_at_the_end(tiny_backbone, sample_polyp):
    network = SelfPromptNet(tiny_backbone)
    loader = DataLoader(Dataset(make_datalist(sample_polyp)[:4], load_and_preprocess(tiny_backbone)), batch_size=2)
    check = FrozenBackboneCheck(network)
    fitter = PixelClassifierFitter(
        "cpu", max_epochs=50, train_data_loader=loader, network=network, train_handlers=[check]
    )
    fitter.run()
    assert fitter.state.epoch == 1 and fitter.state.iteration == 2  # stopped after the fit
    assert fitter.state.metrics["pixels"] > 0 and float(network.classifier.weight.abs().sum()) > 0
    direct = SelfPromptNet(tiny_backbone)
    fit_pixel_classifier(direct, Dataset(make_datalist(sample_polyp)[:4], load_and_preprocess(tiny_backbone)))
    assert torch.allclose(direct.classifier.weight, network.classifier.weight)  # the same fit, batched or not


def _pixels(rng, n=400, shift=0.0):
    """One support image's pixels: feature 0 carries the label, 7 features of noise."""
    y = rng.random(n) < 0.2
    x = rng.normal(size=(n, 8))
    x[:, 0] += np.where(y, 3.0, -3.0) + shift
    return x, y.astype(np.int64)


def test_c_is_chosen_on_held_out_support_videos():
    rng = np.random.default_rng(0)
    samples = [_pixels(rng) for _ in range(6)]
    groups = ["1", "1", "2", "2", "3", "3"]
    best, scores = choose_c(samples, groups, [1e-7, 1.0])
    assert set(scores) == {1e-7, 1.0}
    assert scores[1.0] > 0.9 and scores[1e-7] < scores[1.0]  # crushed weights cannot find the label
    assert best == 1.0
    best, scores = choose_c(samples, groups, [100.0, 1.0, 0.01])  # all separate it: the tie goes nearest 1
    assert best == 1.0 and min(scores.values()) > 0.9
    _, two_groups = choose_c(samples[:4], ["1", "1", "2", "2"], [1.0])  # < 3 videos: leave one image out
    assert two_groups[1.0] > 0.9
    assert choose_c(samples[:1], ["1"], [0.01, 0.5, 10.0])[0] == 0.5  # one shot: nothing to hold out
    empty = [(x, np.zeros_like(y)) for x, y in samples]
    with pytest.raises(ValueError, match="cannot choose c"):
        choose_c(empty, groups, [1.0, 0.1])


def test_c_choice_on_a_large_datastore_costs_max_folds_fits_per_candidate(monkeypatch):
    import sklearn.linear_model

    fits = []

    class CountingFits(sklearn.linear_model.LogisticRegression):
        def fit(self, x, y):
            fits.append(len(y) if self.class_weight is None else -len(y))
            return super().fit(x, y)

    monkeypatch.setattr(sklearn.linear_model, "LogisticRegression", CountingFits)
    rng = np.random.default_rng(1)
    many = [_pixels(rng, n=60) for _ in range(25)]  # 25 labelled images, each its own group
    _, scores = choose_c(many, [str(i) for i in range(25)], [1.0, 0.1], max_folds=5)
    assert len(fits) == 2 * 5 and all(n == 20 * 60 for n in fits)  # 5 folds of 5 images, not 25 fits each
    assert min(scores.values()) > 0.9
    choose_c(many[:4], ["1", "2", "3", "4"], [1.0], class_weight="balanced")
    assert fits[-4:] == [-3 * 60] * 4  # every held-out fit uses the fit's own class weights


def test_the_fitter_chooses_c_from_candidates_and_reports_it(tiny_backbone, sample_polyp):
    network = SelfPromptNet(tiny_backbone)
    loader = DataLoader(Dataset(make_datalist(sample_polyp), load_and_preprocess(tiny_backbone)), batch_size=1)
    fitter = PixelClassifierFitter("cpu", max_epochs=1, train_data_loader=loader, network=network, c=[1.0, 0.1])
    fitter.run()
    assert fitter.groups == [str(item["group"]) for item in make_datalist(sample_polyp)]  # videos, not images
    assert fitter.state.metrics["c"] in (1.0, 0.1)
    chosen = SelfPromptNet(tiny_backbone)
    fit_pixel_classifier(chosen, Dataset(make_datalist(sample_polyp), load_and_preprocess(tiny_backbone)),
                         c=fitter.state.metrics["c"])  # fmt: skip
    assert torch.allclose(chosen.classifier.weight, network.classifier.weight)  # refitted on all with that c


def test_intermediate_levels_are_standardised_and_folded_into_one_convolution(sample_polyp):
    """``embedding+intermediate``: the classifier reads the embedding and the encoder's levels (one encoder pass per
    image), the fit standardises each feature, and the 1x1 convolution reproduces scikit-learn's decision function."""
    from monai_sam.backbones import build_backbone
    from monai_sam.selfprompt.fit import logistic_regression, pixel_samples

    backbone = build_backbone("tiny_sam")  # its own cache: count the encoder passes
    network = SelfPromptNet(backbone, features="embedding+intermediate")
    assert network.standardize and not SelfPromptNet(backbone).standardize
    expected_channels = backbone.embed_dim + sum(backbone.feature_channels())
    assert network.classifier.in_channels == expected_channels
    data = Dataset(make_datalist(sample_polyp)[:4], load_and_preprocess(backbone))
    fit_pixel_classifier(network, data, c=0.5)
    assert backbone.cache.misses == 4  # the levels and the embedding come from one pass per image
    images = torch.stack([data[i]["image"] for i in range(4)])
    x, y = pixel_samples(network, images, [data[i]["label"] for i in range(4)])
    assert x.shape[1] == expected_channels
    reference = logistic_regression(0.5, None, standardize=True).fit(x.astype(np.float64), y.astype(np.int64))
    with torch.no_grad():
        ours = network.classifier.weight[0, :, 0, 0].double().numpy() @ x.T.astype(np.float64)
        ours = ours + network.classifier.bias.double().item()
    np.testing.assert_allclose(ours, reference.decision_function(x.astype(np.float64)), rtol=1e-4, atol=1e-4)
    logits = network(images[:1])
    assert logits.shape == (1, 1, 64, 64) and torch.isfinite(logits).all()
