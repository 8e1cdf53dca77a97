"""Data: loaders for the papers' data, offline corpora, task generators and exact solvers."""
