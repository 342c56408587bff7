"""Write a sample photo and an inpainting mask for the API examples (no download needed):
/tmp/sdxl-photo.png (a 256x256 landscape) and /tmp/sdxl-mask.png (white where inpaint repaints)."""

from PIL import Image, ImageDraw

photo = Image.new("RGB", (256, 256), (135, 190, 235))
draw = ImageDraw.Draw(photo)
draw.rectangle((0, 165, 256, 256), fill=(70, 140, 70))  # a meadow
draw.ellipse((180, 30, 220, 70), fill=(255, 220, 120))  # the sun
draw.polygon([(60, 165), (100, 100), (140, 165)], fill=(120, 110, 100))  # a hill
photo.save("/tmp/sdxl-photo.png")

mask = Image.new("L", (256, 256), 0)
ImageDraw.Draw(mask).rectangle((75, 180, 180, 240), fill=255)  # repaint this part of the meadow
mask.save("/tmp/sdxl-mask.png")
print("wrote /tmp/sdxl-photo.png and /tmp/sdxl-mask.png")
