import pytest

from bench import plugins, registry
from bench.errors import UnknownNameError
from bench.methods import create_method


def test_builtin_entries_are_registered():
    assert {"grad", "grad_x_input", "integrated_gradients", "smoothgrad", "adaptgrad"} <= set(registry.methods.list())
    assert {"ef", "delta_ef", "sparseness"} <= set(registry.metrics.list())
    assert {"shapes", "digits"} <= set(registry.datasets.list())
    assert {"cnn-small", "mlp"} <= set(registry.models.list())


def test_list_filters_with_shell_wildcards():
    assert registry.methods.list("*grad") == sorted(n for n in registry.methods.list() if n.endswith("grad"))


def test_unknown_name_suggests_and_lists_known():
    with pytest.raises(UnknownNameError) as e:
        registry.methods.get("smoothgard")
    msg = str(e.value)
    assert "did you mean 'smoothgrad'" in msg and "bench list methods" in msg and "\n" not in msg


def test_toml_defaults_apply_and_params_override():
    sg = create_method("smoothgrad")
    assert sg.params["n"] == 50 and sg.params["alpha"] == 0.15
    assert create_method("smoothgrad", n=3).params["n"] == 3


def test_unknown_parameter_is_refused_with_the_accepted_ones():
    with pytest.raises(ValueError, match="takes no parameter nn.*it takes: n"):
        create_method("smoothgrad", nn=3)


def test_metric_declarations():
    e = registry.metrics.get("ef")
    assert e.meta["direction"] == "lower" and e.meta["category"] == "complexity"
    assert registry.metrics.get("sparseness").meta["direction"] == "higher"


def test_entry_point_plugins_are_discovered(monkeypatch):
    class FakeEP:
        name = "plugin_grad"

        def load(self):
            def factory(**params):
                """A third-party method."""
                return create_method("grad")

            return factory

    reg = registry.Registry("widget")  # no TOML file, group bench.widgets
    reg.add_loader(plugins.load_entry_points)
    monkeypatch.setattr(plugins, "entry_points", lambda group: [FakeEP()] if group == "bench.widgets" else [])
    assert "plugin_grad" in reg.list()
    assert reg.get("plugin_grad").description == "A third-party method."


def test_timm_style_top_level_api():
    import bench

    assert "smoothgrad" in bench.list_methods("smooth*") and "ef" in bench.list_metrics("e*")
    assert bench.create_method("adaptgrad", c=0.99).params["c"] == 0.99
    assert bench.create_metric("sparseness").direction == "higher"
