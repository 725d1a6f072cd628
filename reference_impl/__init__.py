"""The reference Parameter Golf training stack. Depends on nothing in `harness` or `audit`."""
