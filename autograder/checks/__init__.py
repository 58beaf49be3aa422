"""Hidden checks, called from the hidden blocks of the notebooks' test cells (never released).

Each check raises AssertionError with a message that names the idea being tested (the message reaches
the student's feedback; the check's code does not need to).
"""
