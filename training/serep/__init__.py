"""SEREP mesh-level expression model training (network: ``backend.retarget.serep.SerepNet``).

``python -m training.serep.train --config tiny|base --out DIR [--device cuda]``
writes ``DIR/serep.safetensors`` and ``DIR/config.json``.
"""
