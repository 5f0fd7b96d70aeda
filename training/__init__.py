"""Training code for FaceKey's learned models, one sub-package per model
(``training/<model>/``: data, losses, train loop, configs).

It imports ``backend`` (face model, synthetic data, Take files) and is never
imported by it.  The default capture path (the optimisation solver) needs no
trained weights; learned estimators and generators (cpem, etnet, serep,
motion3dgan, s2d) are trained here and saved as safetensors into the weights
directory the backend reads.
"""
