"""Calibration: INT8 Q/DQ models from a representative subset, and the accuracy report that gates shipping."""
