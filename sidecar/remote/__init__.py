"""What S3 says: listings (the poll) and S3 event notifications from SQS (the feed), folded into
the state."""
