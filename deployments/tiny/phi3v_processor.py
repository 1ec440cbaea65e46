"""The HF processor of Pardus' tiny Phi-3-Vision, shaped for vLLM's Phi3V.

Copied into each tiny model folder as processing_pardus_phi3v.py (transformers loads it with
trust_remote_code), so it imports nothing of Pardus.
"""

import json
import math
import os
import re

import numpy as np
import torch
from PIL import Image
from transformers import AutoTokenizer, BatchFeature
from transformers.image_processing_utils import BaseImageProcessor
from transformers.processing_utils import ProcessorMixin

CROP = 336  # CLIP ViT-L/14-336 input side
MAX_IMAGES = 16  # <|image_1|> ... <|image_16|>


class PardusPhi3VImageProcessor(BaseImageProcessor):
    """Phi-3-Vision HD transform: at most num_crops 336 px crops, padded, plus a global view."""

    model_input_names = ["pixel_values", "image_sizes", "num_img_tokens"]

    def __init__(self, num_crops=1, num_img_tokens=144, image_mean=(0.5,) * 3,
                 image_std=(0.5,) * 3, **kwargs):
        super().__init__(**kwargs)
        self.num_crops, self.num_img_tokens = int(num_crops), int(num_img_tokens)
        self.image_mean, self.image_std = list(image_mean), list(image_std)

    def _layout(self, width, height, num_crops):
        """Scaled width and height, padded height (landscape frame), and whether it was turned."""
        turned = width < height
        if turned:
            width, height = height, width
        ratio, scale = width / height, 1
        while (scale + 1) * math.ceil((scale + 1) / ratio) <= num_crops:
            scale += 1
        new_w = scale * CROP
        new_h = max(1, int(new_w / ratio))
        return new_w, new_h, math.ceil(new_h / CROP) * CROP, turned

    def calc_num_image_tokens_from_image_size(self, width, height, num_crops=None):
        new_w, _, pad_h, turned = self._layout(width, height, num_crops or self.num_crops)
        rows, cols = (new_w, pad_h) if turned else (pad_h, new_w)
        rows, cols = rows // CROP, cols // CROP
        per_row = math.isqrt(self.num_img_tokens)  # 12 merged patches per row, then a separator
        return (rows * cols + 1) * self.num_img_tokens + 1 + (rows + 1) * per_row

    def _hd_image(self, image, num_crops):
        image = image.convert("RGB")
        new_w, new_h, pad_h, turned = self._layout(image.width, image.height, num_crops)
        if turned:
            image = image.transpose(Image.Transpose.TRANSPOSE)
        canvas = Image.new("RGB", (new_w, pad_h), (255, 255, 255))
        resized = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
        canvas.paste(resized, (0, (pad_h - new_h) // 2))
        if turned:
            canvas = canvas.transpose(Image.Transpose.TRANSPOSE)
        pixels = np.asarray(canvas, dtype=np.float32) / 255.0
        pixels = (pixels - np.float32(self.image_mean)) / np.float32(self.image_std)
        return torch.from_numpy(pixels).permute(2, 0, 1).contiguous()

    def preprocess(self, images, num_crops=None, return_tensors=None, **kwargs):
        num_crops = int(num_crops or self.num_crops)
        images = list(images) if isinstance(images, (list, tuple)) else [images]
        pixel_values, sizes, counts = [], [], []
        for image in images:
            if not isinstance(image, Image.Image):
                image = Image.fromarray(np.asarray(image))
            hd = self._hd_image(image, num_crops)
            h, w = hd.shape[1:]
            grid = hd.reshape(3, h // CROP, CROP, w // CROP, CROP).permute(1, 3, 0, 2, 4)
            crops = grid.flatten(0, 1)  # row-major 336 px tiles
            view = torch.nn.functional.interpolate(hd[None], size=(CROP, CROP), mode="bicubic")
            stack = torch.zeros(num_crops + 1, 3, CROP, CROP)  # global view first, unused stay 0
            stack[: 1 + len(crops)] = torch.cat([view, crops])
            pixel_values.append(stack)
            sizes.append([h, w])  # padded size: vLLM derives the crop grid from it
            counts.append(self.calc_num_image_tokens_from_image_size(*image.size, num_crops))
        data = {"pixel_values": torch.stack(pixel_values), "image_sizes": torch.tensor(sizes),
                "num_img_tokens": torch.tensor(counts)}
        return BatchFeature(data=data, tensor_type=return_tensors)


class PardusPhi3VProcessor(ProcessorMixin):
    """Tokenizer + image processor; text's "<|image_N|>" becomes that many "<|image|>" tokens."""

    special_image_token = "<|image|>"

    def __init__(self, image_processor, tokenizer, chat_template=None):
        super().__init__(image_processor, tokenizer, chat_template=chat_template)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        folder = str(pretrained_model_name_or_path)
        tokenizer = kwargs.get("tokenizer") or AutoTokenizer.from_pretrained(folder)
        with open(os.path.join(folder, "preprocessor_config.json")) as f:
            keep = ("num_crops", "num_img_tokens", "image_mean", "image_std")
            settings = {k: v for k, v in json.load(f).items() if k in keep}
        if kwargs.get("num_crops") is not None:
            settings["num_crops"] = kwargs["num_crops"]
        image_processor = PardusPhi3VImageProcessor(**settings)
        return cls(image_processor, tokenizer, getattr(tokenizer, "chat_template", None))

    @property
    def img_tokens(self):
        return [f"<|image_{i}|>" for i in range(1, MAX_IMAGES + 1)]

    def calc_num_image_tokens_from_image_size(self, width, height):
        return self.image_processor.calc_num_image_tokens_from_image_size(width, height)

    def __call__(self, text=None, images=None, return_tensors=None, num_crops=None, **kwargs):
        data, counts = {}, []
        if images is not None:
            data.update(self.image_processor(images, num_crops=num_crops))
            counts = data["num_img_tokens"].tolist()
        if text is not None:
            texts = [text] if isinstance(text, str) else list(text)

            def expand(match):
                index = int(match.group(1)) - 1
                if index >= len(counts):
                    raise ValueError(f"{match.group(0)} but {len(counts)} image(s) given")
                return self.special_image_token * counts[index]

            texts = [re.sub(r"<\|image_(\d+)\|>", expand, t) for t in texts]
            data.update(self.tokenizer(texts, padding=len(texts) > 1))
        return BatchFeature(data=data, tensor_type=return_tensors)
