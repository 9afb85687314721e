"""audiorole-ray: the AudioRole corpus method on Ray."""

__version__ = "0.1.0"
