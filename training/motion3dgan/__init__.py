"""Motion3DGAN training (network: ``backend.generation.motion3dgan``) and the labelled synthetic
expression motions that Motion3DGAN and S2D-Dec train on (:mod:`training.motion3dgan.data`)."""
