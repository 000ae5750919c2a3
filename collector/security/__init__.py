"""Application-instance certificates (OPC UA Part 6, 6.2.2): made once and kept. A leaf module
(cryptography only) that the collector and the simulators both use."""
