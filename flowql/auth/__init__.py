"""Authentication and authorization: passwords, JWTs, API keys, secrets, principals."""
