"""Control hints: what a ControlNet is given, made from the control image a request sent (`auto_hint`).
Canny edges are made here with OpenCV; the other annotated types need annotator models this deployment
does not install, so their images are used as given (the API says so in meta.not_applied)."""

import cv2
import numpy as np
from django.conf import settings
from PIL import Image

from generation.kinds.controlnet import CANNY


def canny(image: Image.Image) -> Image.Image:
    """White edges on black (OpenCV's Canny with CANNY_LOW_THRESHOLD / CANNY_HIGH_THRESHOLD), as RGB."""
    edges = cv2.Canny(np.asarray(image.convert("L")), settings.CANNY_LOW_THRESHOLD, settings.CANNY_HIGH_THRESHOLD)
    return Image.fromarray(edges).convert("RGB")


def control_hint(image: Image.Image, hint: str) -> Image.Image:
    """The hint a ControlNet sees for `image`: its canny edges (`hint` "canny"), or the image as given."""
    return canny(image) if hint == CANNY else image
