from __future__ import annotations

import worker.model


def test_the_package_exports_exactly_its_public_surface() -> None:
    public = {name for name in vars(worker.model) if not name.startswith("_")}
    modules = {
        "batch",
        "contract",
        "features",
        "gnn",
        "loader",
        "losses",
        "outputs",
        "pooling",
        "registry",
        "spec_graph",
        "statistics",
        "temporal",
    }
    assert public - modules - {"annotations"} == set(worker.model.__all__)
    for name in worker.model.__all__:
        assert getattr(worker.model, name) is not None
