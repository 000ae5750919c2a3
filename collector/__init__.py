"""smeltwatch collector: plant data in over OPC UA and MQTT, durably into TimescaleDB.

`collector.contracts` holds the data contracts every package shares; `collector.store` the
schema and the writer.
"""
