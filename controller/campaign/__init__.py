"""Closed-loop campaigns: configuration, journal, runner, report, command line."""
