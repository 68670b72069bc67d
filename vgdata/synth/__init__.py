"""The synthetic city: raw SF-XL-like inputs generated on the spot (``vgdata synth``).

``scene`` builds the street network and buildings, ``render`` ray-casts equirectangular
panoramas of it, ``generate`` plans the drives and queries and writes the files.
"""

from vgdata.synth.generate import GENERATOR_VERSION, PRESETS, SynthConfig, SynthResult, synth

__all__ = ["GENERATOR_VERSION", "PRESETS", "SynthConfig", "SynthResult", "synth"]
