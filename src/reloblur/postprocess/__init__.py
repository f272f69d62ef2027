"""Post-processing: make B and S comparable pixel for pixel (colour, brightness,
registration, crop/resize). Arrays in, results out: no files, no torch, no capture."""
