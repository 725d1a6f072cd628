"""The pgolf harness: records and logs, checks, runners, reproduction, reports, CLI."""
__version__ = "0.1.0"
