"""Carrying out one decision: uploads, downloads, deletes, conflicts, and what they share."""
