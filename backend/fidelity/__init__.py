"""Capture-fidelity benchmark (`facekey bench fidelity`): synthetic truth, landmark truth, real-footage checks."""
