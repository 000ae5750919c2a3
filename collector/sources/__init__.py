"""Protocol sources (issue #4): one sub-package per protocol (opcua, mqtt), each a `Source`
that owns its connection lifecycle and hands Readings to a sink."""
