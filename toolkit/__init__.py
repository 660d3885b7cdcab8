"""toolkit: named, comparable fastai training recipes for image classification on small proxy datasets.

The face a notebook or a script touches; the launcher (`toolkit run`, `toolkit compare`) does the same:

    import toolkit
    toolkit.list_experiments("mixup*")
    done = toolkit.run("mixup", dataset="digits", epochs=4, seeds=3)     # with its reference, normalize
    done                                                                # the comparison, as a table
    learn = toolkit.learner("mixup", dataset="digits")                  # a plain fastai Learner of the recipe
    learn.lr_find(); learn.fit_one_cycle(1)
    toolkit.run("mixup", dataset="digits", seeds="auto")                # seeds spent where they decide
    toolkit.noise("baseline", dataset="digits")                         # how noisy is this proxy?
    toolkit.search("normalize", {"lr": "log(1e-4,1e-1)"}, trials=20,    # Optuna proposes; the best 3 are
                   dataset="digits", pruner="halving")                  #   confirmed on fresh seeds

    @toolkit.register_callback("clip_grads")                            # your own idea, by name in a recipe:
    def clip_grads(max_norm: float = 1.0):                              #   callbacks=("clip_grads(max_norm=0.5)",)
        return GradientClip(max_norm)                                   #   (also register_loss, _model,
                                                                        #   _optimizer, _batch_tfm)

Attributes load on first use, so `import toolkit` loads no torch or fastai. The package is grouped by stage, in
the order data flows (each may use the ones before it): recipes -> data -> train -> records -> sweep -> report
-> design (see tests/test_layout.py).
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_FACE = {
    "get": "toolkit.recipes.registry", "derive": "toolkit.recipes.registry", "register": "toolkit.recipes.registry",
    "register_suite": "toolkit.recipes.registry", "list_experiments": "toolkit.recipes.registry",
    "list_suites": "toolkit.recipes.registry", "Recipe": "toolkit.recipes.recipe",
    "run": "toolkit.api", "compare": "toolkit.api", "dls": "toolkit.api", "learner": "toolkit.api",
    "context": "toolkit.api", "Comparison": "toolkit.api", "noise": "toolkit.api", "show": "toolkit.api",
    "export": "toolkit.api", "resume": "toolkit.api", "runs": "toolkit.api", "rebuild_table": "toolkit.api",
    "Options": "toolkit.sweep.options", "data_show": "toolkit.api", "data_check": "toolkit.api",
    "fidelity": "toolkit.api", "search": "toolkit.api", "Searched": "toolkit.api",
    **{f"register_{kind}": "toolkit.recipes.components"
       for kind in ("callback", "loss", "model", "optimizer", "batch_tfm")},
}
__all__ = sorted(_FACE)


def __getattr__(name: str):
    if name not in _FACE:
        raise AttributeError(f"module 'toolkit' has no attribute {name!r}")
    from .recipes import registry
    registry.load_named()
    value = getattr(importlib.import_module(_FACE[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted([*globals(), *_FACE])
