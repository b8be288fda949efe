from .harness import server  # noqa: F401  (the fixture, for every browser test module)
