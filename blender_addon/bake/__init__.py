"""Baking a Take into Blender animation: pure functions over bpy data.

``fcurves``: one helper over both animation APIs (5.0 layered actions and
the legacy ``action.fcurves``).  ``shape_keys``: weights -> shape-key
F-curves.  ``head``: head rotation -> object or pose-bone rotation.
``readback``: F-curves -> Take (for CSV export).  ``axes``: head frame ->
Blender axes.
"""
