"""Post-processing: make B and S comparable pixel for pixel (raw decoding, colour,
brightness, registration, crop/resize). Pure functions on arrays; no hardware imports."""
