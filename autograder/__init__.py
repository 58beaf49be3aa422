"""The autograder: hidden checks, accuracy thresholds and the grade command (see autograder/README.md)."""
