"""LBAG: the local blur-aware gated network (MIMO-UNet+ with gate heads), its training,
evaluation and inference. Everything here needs the ``train`` extra (torch)."""
