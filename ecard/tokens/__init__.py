"""E-card tokens: signing keys and JWKS, e-card and QR tokens, the verifier, status list, PIN.

No Flask here. Modules:

- :mod:`ecard.tokens.keys` — ``KeyStore`` (P-256 keys in the instance folder, rotation, JWKS) and
  ``KeySet`` (the parsed public keys a verifier trusts).
- :mod:`ecard.tokens.jws` — the hardened compact-JWS verifier every token type goes through.
- :mod:`ecard.tokens.cards` — the e-card (``typ`` ``ecard+jwt``).
- :mod:`ecard.tokens.qr` — the single-use QR presentation token (``typ`` ``ecard-qr+jwt``),
  PNG/SVG rendering and decoding from a photo.
- :mod:`ecard.tokens.status` — IETF Token Status List (2 bits per card) and its signed token.
- :mod:`ecard.tokens.pin` — PIN policy, argon2id hashing with a pepper, lockout.
- :mod:`ecard.tokens.verifier` — ``OfflineVerifier`` for integrators (cached JWKS + status).
"""
