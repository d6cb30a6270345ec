"""Threads and stages of `skyedge run`: lifecycle, pipelines, batcher, publisher, the records between them."""
