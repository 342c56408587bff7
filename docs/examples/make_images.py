"""Write a sample photo and an inpainting mask for the API examples (no download needed):
/tmp/sdxl-photo.png (a 512x512 landscape) and /tmp/sdxl-mask.png (white where inpaint repaints)."""

from PIL import Image, ImageDraw

photo = Image.new("RGB", (512, 512), (135, 190, 235))
draw = ImageDraw.Draw(photo)
draw.rectangle((0, 330, 512, 512), fill=(70, 140, 70))  # a meadow
draw.ellipse((360, 60, 440, 140), fill=(255, 220, 120))  # the sun
draw.polygon([(120, 330), (200, 200), (280, 330)], fill=(120, 110, 100))  # a hill
photo.save("/tmp/sdxl-photo.png")

mask = Image.new("L", (512, 512), 0)
ImageDraw.Draw(mask).rectangle((150, 360, 360, 480), fill=255)  # repaint this part of the meadow
mask.save("/tmp/sdxl-mask.png")
print("wrote /tmp/sdxl-photo.png and /tmp/sdxl-mask.png")
