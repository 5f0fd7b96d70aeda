"""FaceKey backend: footage, tracking, face model, estimators, worker and CLI.

Runs in its own environment (torch, mediapipe, PyAV); never imports bpy.
"""
__version__ = "0.1.0"
