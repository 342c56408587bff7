"""The canvas of an outpaint job: the image centred on the new size (scaled down to fit when it is
larger), and the mask that repaints the new area and a band of `overlap` pixels into the image on each
side that gained new area, fading from white at the image's edge to black: SDXL paints the seam, and
every pixel further in is the image's own (the predictor composites them back)."""

import numpy as np
from PIL import Image, ImageFilter


def canvas(image: Image.Image, size: tuple[int, int], overlap: int) -> tuple[Image.Image, Image.Image]:
    """(the canvas, its mask: white = paint) for `image` outpainted to `size`."""
    width, height = size
    scale = min(1.0, width / image.width, height / image.height)
    placed = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.LANCZOS)
    left, top = (width - placed.width) // 2, (height - placed.height) // 2
    # the new area starts from the image's edges smeared outwards, not a flat colour: inpainting then
    # continues the picture rather than framing it
    background = placed.resize((width, height), Image.BILINEAR).filter(
        ImageFilter.GaussianBlur(max(width, height) / 16)
    )
    result = background.copy()
    result.paste(placed, (left, top))

    ys, xs = np.mgrid[0 : placed.height, 0 : placed.width]
    distances = [np.full(xs.shape, np.inf)]
    for gained, distance in (
        (left > 0, xs),
        (top > 0, ys),
        (left + placed.width < width, placed.width - 1 - xs),
        (top + placed.height < height, placed.height - 1 - ys),
    ):
        if gained:
            distances.append(distance.astype(float))
    nearest = np.minimum.reduce(distances)
    band = np.clip(1.0 - nearest / overlap, 0.0, 1.0) if overlap > 0 else np.zeros(nearest.shape)
    mask = Image.new("L", size, 255)
    mask.paste(Image.fromarray((band * 255).round().astype(np.uint8)), (left, top))
    return result, mask
