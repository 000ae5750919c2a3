"""MQTT source (issue #4). The pure, I/O-free layers live here and are re-exported:

- `topics.TopicMap`: received topic → the plant model's bindings; the subscriptions to make;
- `decoders.decode`: one message → Readings, MaterialEvents and DeadLetters, never raising.

The paho client that feeds them (and acknowledges a message once its batch is durable) is a
separate module.
"""

from collector.sources.mqtt.decoders import Decoded, JsonPathError, compile_path, decode
from collector.sources.mqtt.topics import TopicBindings, TopicMap, TopicMapError

__all__ = [
    "Decoded",
    "JsonPathError",
    "TopicBindings",
    "TopicMap",
    "TopicMapError",
    "compile_path",
    "decode",
]
