"""Fixtures of the Blender integration tests (defined in ``blender_fixtures``)."""
from blender_fixtures import addon_zips, faceless_clip, run_scenario, synthetic_csv  # noqa: F401
