"""The synthetic city: raw SF-XL-like inputs generated on the spot (``vgdata synth``).

``scene`` builds the street network and buildings (objects and hash in ``geometry``, per-year
occluders in ``occluders``); ``render`` ray-casts equirectangular panoramas of it (``raycast``:
rays against facades and occluders, ``appearance``: per-scene and per-year looks, ``shading``:
pixel colours); ``generate`` is the command (``plan``: drives and queries, ``photos``: the files
each rendering task writes).
"""

from vgdata.synth.generate import GENERATOR_VERSION, PRESETS, SynthConfig, SynthResult, synth

__all__ = ["GENERATOR_VERSION", "PRESETS", "SynthConfig", "SynthResult", "synth"]
