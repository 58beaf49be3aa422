"""Hidden checks, called from the hidden blocks of the notebooks' test cells (never released).

Each check is a probe (the student's code on inputs the check chooses, recorded as plain values) and a
verdict (the judgement, AssertionError with a message that names the idea being tested: the message
reaches the student's feedback, the check's code does not). The grader runs every probe again outside
the notebook and judges it in its own process (:mod:`autograder.checks.common`).
"""
