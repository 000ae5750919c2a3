"""The OPC UA source (issue #4): sessions, subscriptions and backfill (`source`), addresses and
values, the collector's certificates and trust store (`pki`), and `smeltwatch collect discover`
(`discover`, `cli`). See README.md in this folder."""
