"""LBFMG: local blur foreground mask generation, review and statistics."""
