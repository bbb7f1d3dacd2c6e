"""S3 access over aiohttp: signed requests, retries, XML."""
