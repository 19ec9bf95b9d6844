"""Tests of the sandbox backends, the resident runner and the language table."""
