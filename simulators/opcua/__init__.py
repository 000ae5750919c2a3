"""The OPC UA side of the simulated plant: generic simulated devices (`device`), the plant's
PLCs built on them (`plc`), their history, security and engineering units."""

from simulators.opcua.device import (
    EngineeringUnit,
    OpcUaChaos,
    OpcUaDevice,
    VariableSpec,
)
from simulators.opcua.plc import PlcServer, QualityCycle
from simulators.opcua.security import OpcUaSecurity
from simulators.opcua.units import eu_information

__all__ = ["EngineeringUnit", "OpcUaChaos", "OpcUaDevice", "OpcUaSecurity", "PlcServer",
           "QualityCycle", "VariableSpec", "eu_information"]
