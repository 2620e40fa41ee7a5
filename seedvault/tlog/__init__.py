"""Transparency logs on the C2SP standards: RFC 6962 trees, tiles, signed notes,
checkpoints, witnesses' cosignatures and offline `.tlog-proof` files.

Pure formats and proofs (`merkle`, `note`, `checkpoint`, `tiles`, `entry`, `proof`), the
node's side (`store`, `witness`, `service`), and the client's memory of logs (`memory`).
Whether a proof is good enough to trust a release is decided in `signing.trusted`.
"""
