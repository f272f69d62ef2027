"""``reloblur demo``: the whole pipeline on the simulated rig, with an HTML report."""
