"""Security primitives: e.firma, passwords, TOTP, tokens, authorization (built by the identity issue on)."""
