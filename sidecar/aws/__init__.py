"""AWS protocol helpers implemented without the AWS SDK."""
