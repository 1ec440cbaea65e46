"""The composite picture: layout for any k, labels, aspect ratio, the query marker."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pardus.deployments.reranker.grid import QUERY_COLOR, compose, layout


@pytest.mark.parametrize("k", range(1, 17))
def test_every_k_fits_its_cells_without_overlap(k):
    grid = layout(k, with_query=True, cell=100, gap=10)
    assert grid.columns * grid.rows >= k and grid.columns - grid.rows in (0, 1)
    width, height = grid.size
    boxes = [grid.cell_box(i) for i in range(k)]
    for box in boxes:
        assert box[0] >= grid.query_side + 20 and box[2] <= width and box[3] <= height
    for a in range(k):
        for b in range(a + 1, k):
            A, B = boxes[a], boxes[b]
            assert A[2] <= B[0] or B[2] <= A[0] or A[3] <= B[1] or B[3] <= A[1]
    picture = compose(Image.new("RGB", (50, 80), "blue"), [Image.new("RGB", (30, 30))] * k, cell=100, gap=10)
    assert picture.size == grid.size and picture.mode == "RGB"


def test_aspect_ratio_is_kept_and_labels_are_drawn():
    wide = Image.new("RGB", (400, 100), (0, 200, 0))
    picture = np.asarray(compose(None, [wide, None], cell=100, gap=10))
    cell = picture[10:110, 10:110]
    green_rows = np.where((cell[:, 50] == (0, 200, 0)).all(axis=1))[0]
    assert 20 <= len(green_rows) <= 30  # 400x100 letterboxed into 100x100: 25 rows tall
    assert (cell[:25, 2:30] == 0).any()  # the black label box of "1"
    grey = picture[10:110, 120:220]
    assert (grey[60:90, 60:90] == 200).all()  # missing image: a grey cell, still numbered


def test_query_is_framed_in_red_and_on_the_left():
    picture = np.asarray(compose(Image.new("RGB", (64, 64), "white"), [Image.new("RGB", (8, 8))] * 3,
                                 cell=100, gap=12))
    assert (picture[100, 12 - 2] == QUERY_COLOR).all()
    assert layout(3, True, 100, 12).query_side == 212


def test_empty_grid_is_refused():
    with pytest.raises(ValueError):
        layout(0, with_query=False)
