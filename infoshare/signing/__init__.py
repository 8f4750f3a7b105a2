"""Signatures: Ed25519 detached JWS over the RFC 8785 form of each object
(docs/ARCHITECTURE.md, "Signatures"). Pure: no Flask, no database; keys live in files
under the data directory."""
