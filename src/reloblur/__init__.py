"""reloblur: real-world local motion blur datasets (ReLoBlur method) and LBAG deblurring."""

__version__ = "0.1.0"
