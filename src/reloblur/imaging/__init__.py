"""Imaging: image files (8/16-bit PNG and TIFF), colour encodings, pixel formats, Bayer
mosaics and camera raw decoding. Depends only on the base modules."""
