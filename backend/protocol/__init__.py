"""The protocol package: everything both processes share.

Imports only the standard library and numpy, so ``build_addon.py`` copies it
verbatim into the add-on (as ``facekey/protocol``).  Modules: ``errors``
(FaceKeyError), ``arkit`` (unit set), ``take`` (Take files), ``messages``
(JSON lines), ``client`` (spawn + talk to the worker), ``livelink``
(Live Link Face CSV), ``namemap`` (unit-name -> shape-key maps),
``rotations`` (quaternion/Euler helpers), ``keytake`` (character key curves),
``npzfile`` (versioned .npz files: atomic write, strict read), ``pc2``
(Point Cache 2 files for Blender's Mesh Cache modifier), ``axes`` (head frame <-> Blender axes),
``takefolder`` (the takes of a folder, for batch bakes).
"""
from .errors import FaceKeyError  # noqa: F401
