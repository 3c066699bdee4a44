"""What every server shares: listening, TLS, keys, the HTTP shell, users and sessions."""
