"""Expression generation: Motion3DGAN (label -> 68-landmark motion on the SRVF hypersphere) and the
Sparse-to-Dense decoder (landmark displacements -> dense mesh displacements), trained by
``training/motion3dgan`` and ``training/s2d``."""
