"""Detection experts."""
