"""sutskever: Ilya Sutskever's landmark systems as runnable, checked recipes."""
__version__ = "0.1.0"
