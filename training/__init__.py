"""Training code for FaceKey's learned models, one sub-package per model
(``training/<model>/``: data, losses, train loop, configs).

It imports ``backend`` (face model, synthetic data, Take files) and is never
imported by it.  The default capture path (the optimisation solver) needs no
trained weights; the learned models the product uses (SEREP for mesh-level
retargeting, Motion3DGAN and S2D-Dec for generation) are trained here and saved
as safetensors + config.json, one model per folder, which the backend loads.
"""
