"""The picture the reranker sees: the query image, marked, beside a numbered grid of candidates."""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont, ImageOps

BACKGROUND = (255, 255, 255)
QUERY_COLOR = (220, 30, 30)
LABEL_FILL = (0, 0, 0)
LABEL_TEXT = (255, 255, 255)
MISSING = (200, 200, 200)


@dataclass(frozen=True)
class GridLayout:
    columns: int
    rows: int
    cell: int  # square cell side in pixels
    gap: int
    query_side: int  # 0 when there is no query image

    @property
    def size(self) -> tuple[int, int]:
        grid_w = self.columns * self.cell + (self.columns + 1) * self.gap
        grid_h = self.rows * self.cell + (self.rows + 1) * self.gap
        query_w = self.query_side + 2 * self.gap if self.query_side else 0
        return grid_w + query_w, max(grid_h, self.query_side + 2 * self.gap)

    def cell_box(self, index: int) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) of candidate `index` (0-based), row by row."""
        row, col = divmod(index, self.columns)
        left = (self.query_side + 2 * self.gap if self.query_side else 0) + self.gap
        x = left + col * (self.cell + self.gap)
        y = self.gap + row * (self.cell + self.gap)
        return x, y, x + self.cell, y + self.cell


def layout(count: int, with_query: bool, cell: int = 224, gap: int = 12) -> GridLayout:
    """A near-square grid for `count` candidates; the query panel spans two cells' height."""
    if count < 1:
        raise ValueError("a grid needs at least one candidate")
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    query_side = min(2, rows) * cell + (min(2, rows) - 1) * gap if with_query else 0
    return GridLayout(columns, rows, cell, gap, query_side)


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)  # Pillow's bundled scalable font: works offline


def _fit(image: Image.Image | None, side: int) -> Image.Image:
    """The image letterboxed into a side x side square (aspect ratio kept)."""
    canvas = Image.new("RGB", (side, side), MISSING if image is None else BACKGROUND)
    if image is not None:
        fitted = ImageOps.contain(image.convert("RGB"), (side, side), Image.Resampling.BICUBIC)
        canvas.paste(fitted, ((side - fitted.width) // 2, (side - fitted.height) // 2))
    return canvas


def _label(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, size: int,
           fill=LABEL_FILL) -> None:
    """White text on a solid box: readable on any picture."""
    font = _font(size)
    left, top, right, bottom = draw.textbbox(xy, text, font=font)
    pad = max(2, size // 5)
    draw.rectangle((left - pad, top - pad, right + pad, bottom + pad), fill=fill)
    draw.text(xy, text, font=font, fill=LABEL_TEXT)


def compose(query: Image.Image | None, candidates: list[Image.Image | None], cell: int = 224,
            gap: int = 12) -> Image.Image:
    """One RGB picture: the query (red frame, "QUERY") on the left, candidates numbered 1..k.

    A candidate whose image is missing (None) gets a grey cell with its number, so numbers
    always match positions in the candidate list.
    """
    grid = layout(len(candidates), query is not None, cell, gap)
    canvas = Image.new("RGB", grid.size, BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    label_size = max(14, cell // 7)
    if query is not None:
        side = grid.query_side
        canvas.paste(_fit(query, side), (gap, gap))
        border = max(3, side // 60)
        far = gap + side + border - 1
        draw.rectangle((gap - border, gap - border, far, far), outline=QUERY_COLOR, width=border)
        _label(draw, (gap + border + 4, gap + border + 4), "QUERY", label_size, fill=QUERY_COLOR)
    for index, image in enumerate(candidates):
        left, top, right, bottom = grid.cell_box(index)
        canvas.paste(_fit(image, cell), (left, top))
        draw.rectangle((left, top, right - 1, bottom - 1), outline=(60, 60, 60), width=1)
        _label(draw, (left + 6, top + 4), str(index + 1), label_size)
    return canvas
