"""Physically grounded simulators (numpy, OpenCV, astropy only; never torch).

``allsky`` renders fisheye all-sky frames of six sky classes, ``transients``
renders image-stamp sequences of variable and transient objects from an
observation log, ``field`` renders full telescope frames of one field over many
epochs. The edge demo and tests reuse their output files.
"""
