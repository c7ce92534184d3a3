import pytest

from bench import plugins, registry
from bench.errors import GradBenchError, UnknownNameError
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


# -- citations: one place per name -------------------------------------------------------------
def _widgets(tmp_path, monkeypatch, toml: str, code_citation: str = "Code et al. 2020") -> registry.Registry:
    (tmp_path / "widgets.toml").write_text(toml)
    monkeypatch.setattr(registry, "REGISTRY_DIR", tmp_path)
    reg = registry.Registry("widget")

    def w(**params):
        return params

    reg.register("w", citation=code_citation)(w)
    return reg


def test_a_toml_citation_contradicting_the_code_is_an_error_naming_both(tmp_path, monkeypatch):
    reg = _widgets(tmp_path, monkeypatch, '[w]\ncitation = "Toml et al. 2021"\n')
    with pytest.raises(GradBenchError) as e:
        reg.get("w")
    msg = str(e.value)
    assert "widgets.toml: [w] cites 'Toml et al. 2021'" in msg and "\n" not in msg
    assert "test_registry._widgets.<locals>.w already declares citation 'Code et al. 2020'" in msg


@pytest.mark.parametrize("toml, code, expected", [
    ('[w]\nparams = { a = 1 }\n', "Code et al. 2020", "Code et al. 2020"),  # the code cites; TOML is silent
    ('[w]\ncitation = "Toml et al. 2021"\n', "", "Toml et al. 2021"),  # the TOML cites what the code does not
    ('[w]\ncitation = "Code et al. 2020"\n', "Code et al. 2020", "Code et al. 2020"),  # both say the same
])
def test_one_citation_per_name(tmp_path, monkeypatch, toml, code, expected):
    assert _widgets(tmp_path, monkeypatch, toml, code).get("w").citation == expected


def test_an_alias_has_its_own_citation(tmp_path, monkeypatch):
    reg = _widgets(tmp_path, monkeypatch, '[v]\nimplementation = "w"\ncitation = "Alias et al. 2022"\n')
    assert reg.get("v").citation == "Alias et al. 2022" and reg.get("w").citation == "Code et al. 2020"


def test_published_citations_are_the_registry_files():
    import tomllib

    for kind in ("methods", "metrics"):
        with (registry.REGISTRY_DIR / f"{kind}.toml").open("rb") as f:
            table = tomllib.load(f)
        for name, spec in table.items():
            if "citation" in spec:
                assert registry.REGISTRIES[kind].get(name).citation == spec["citation"], name
