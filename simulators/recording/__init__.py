"""Record and replay plant feeds (rosbag2 as the model): `recorder` captures MQTT messages and
OPC UA DataValues into a recording (`store`: one SQLite file, documented there), `player`
plays one back into a broker and OPC UA servers."""

from simulators.recording.player import Player, ReplayOptions, ReplayStats, replay
from simulators.recording.recorder import Recorder, RecordOptions, RecordStats, record
from simulators.recording.store import Channel, Message, Recording, RecordingError

__all__ = ["Channel", "Message", "Player", "RecordOptions", "RecordStats", "Recorder",
           "Recording", "RecordingError", "ReplayOptions", "ReplayStats", "record", "replay"]
