"""Burst pairs: one camera, overlapped exposures; B the mean of K raw frames, S one of them."""
