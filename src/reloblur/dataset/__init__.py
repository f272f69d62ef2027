"""Dataset tools on the ReLoBlur layout: validate, stats, split, export."""
