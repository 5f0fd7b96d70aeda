"""Character solve, Blender side: measure a mesh's shape keys (``measure``) for the backend's solve,
and the headless steps (``headless``) that ``facekey bake --mode solve`` runs."""
