"""S2D-Dec training (network: ``backend.generation.s2d.S2DDecoder``): ``python -m training.s2d.train``."""
