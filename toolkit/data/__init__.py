"""Data: datasets (named, embedded digits, folders, CSV files), the packed image cache and its loader, the one
pipeline that turns a resolved recipe into fastai DataLoaders, and batch augmentation (crops, flips, policies)."""
