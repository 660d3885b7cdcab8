"""toolkit: named, comparable fastai training recipes for image classification on small proxy datasets.

Notebook and launcher share this API:

    import experiments                      # registers the named experiments
    from toolkit import report, sweep
    done = sweep.run(["mixup"], sweep.context_of(dataset="digits"), seeds=3)   # and its reference, normalize
    print(report.to_markdown(done.summary))
"""
__version__ = "0.1.0"
