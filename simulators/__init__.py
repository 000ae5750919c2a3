"""Software stand-ins for the plant hardware: OPC UA servers and MQTT publishers (issue #3)."""
