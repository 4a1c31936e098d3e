"""Cost probes: latency (:mod:`.latency`), peak memory (:mod:`.memory`), compute
(:mod:`.compute`), the efficiency cell that combines them (:mod:`.efficiency`) and the
pytest-benchmark export (:mod:`.pytest_benchmark`).

Kept free of imports so that the RSS sampler's spawned process starts light.
"""
