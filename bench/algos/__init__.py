"""One file per algorithm (or family); each registers itself with ``bench.registry.register``."""
