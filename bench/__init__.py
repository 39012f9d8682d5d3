"""wardgate benchmarks: `python -m bench <dataplane|scale|reconfig|all> [--quick] [--runs N] [--out DIR]`.

Every figure is measured against baselines started in the same run and reported as ratios.
See bench/README.md for how to read the results.
"""
