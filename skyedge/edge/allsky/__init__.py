"""All-sky frames: the frame task, the site (capture time, ephemeris, day), answers from the model."""
