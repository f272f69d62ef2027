"""``reloblur mask review``: the local web app for checking and correcting masks."""
