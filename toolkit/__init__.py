"""toolkit: named, comparable fastai training recipes for image classification on small proxy datasets.

Notebook and launcher share this API:

    import experiments                      # registers the named experiments
    from toolkit import registry, train, report
    result = train.run(registry.get("baseline"))
"""
__version__ = "0.1.0"
