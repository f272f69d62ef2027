"""LBFMG: local blur foreground mask generation and mask metrics. Arrays in, results out:
no files, no torch, no capture."""
