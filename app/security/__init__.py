"""Security primitives: e.firma, passwords, TOTP, tokens, portal sessions, rate limits, authorization."""
