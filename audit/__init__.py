"""Static and dynamic review of submission code. Never imports `harness`."""
