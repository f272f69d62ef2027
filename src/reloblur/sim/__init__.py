"""The simulated world: the two-camera rig simulator, ``reloblur simulate``, and the
sync-box emulator. Used by the ``sim`` camera backend, the demo, tests and benchmarks."""
