"""Overlay pictures: prediction filled green, ground truth outlined red."""

from __future__ import annotations

import numpy as np

from monai_sam.visualize import overlay


def test_overlay_colours_the_prediction_and_outlines_the_label():
    image = np.full((20, 20, 3), 100.0)
    pred = np.zeros((20, 20), bool)
    pred[5:10, 5:10] = True
    label = np.zeros((20, 20), bool)
    label[2:18, 2:18] = True
    picture = overlay(image, pred, label)
    assert picture.dtype == np.uint8 and picture.shape == (20, 20, 3)
    assert picture[7, 7, 1] > picture[7, 7, 0]  # green inside the prediction
    assert tuple(picture[2, 10]) == (255, 0, 0) and tuple(picture[0, 0]) == (100, 100, 100)
