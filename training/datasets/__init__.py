"""Adapters from real public data sets to machine specs, windows and labels.

Each module reads one data set in its published format (../shared/data/README.md), describes
the machine as a :class:`~schemas.spec.SystemSpec` topology, and cuts the recordings into
windows under the data set's own evaluation protocol: SKAB (pump rig), UCI hydraulic (test
rig) and C-MAPSS FD001 (turbofan). The benchmarks in ``training/bench_*.py`` train the same
UniversalTemporalGNN architecture on each.
"""
