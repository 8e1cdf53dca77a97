"""The one error type the CLI turns into a one-line message and exit status 2."""


class UserError(Exception):
    """Bad input from the user: a wrong name, key, value, path or file.

    The message says what is wrong and how to fix it, on one line.
    """
