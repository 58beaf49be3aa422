"""The Gradescope autograder bundle: the same grading in Gradescope's layout (``make gradescope``)."""
