"""Stars as ground truth for all-sky cameras: a bright-star catalogue, star detection, the camera's lens geometry
solved from the sky, and star visibility per sky sector (docs/stars.md)."""
