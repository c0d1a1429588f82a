"""attacks subpackage."""
