"""Executing suites: the runner (local), Ray, pass counting and cost estimates, and the result store."""
