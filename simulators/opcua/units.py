"""Engineering units as OPC UA expects them: EUInformation with the UNECE Rec. 20 common code
(OPC UA Part 8, 5.6.3), so any client can tell °C from K without reading a display string."""

from __future__ import annotations

from asyncua import ua

UNECE_URI = "http://www.opcfoundation.org/UA/units/un/cefact"
# catalogue unit → UNECE common code; "" where Rec. 20 has no code (the display name remains)
UNECE_CODES = {"°C": "CEL", "K": "KEL", "Pa": "PAL", "kPa": "KPA", "Nm³/h": "MQH",
               "Nm³": "MTQ", "kWh": "KWH", "kW": "KWT", "MJ/Nm³": "", "t": "TNE",
               "t/h": "E18", "%": "P1", "h": "HUR", "m³": "MTQ", "count": "C62", "state": ""}


def unece_unit_id(code: str) -> int:
    """Part 8: the UnitId is the common code's characters packed into an Int32; -1 if none."""
    if not code:
        return -1
    unit_id = 0
    for ch in code:
        unit_id = (unit_id << 8) | ord(ch)
    return unit_id


def eu_information(unit: str) -> ua.EUInformation:
    return ua.EUInformation(NamespaceUri=UNECE_URI,
                            UnitId=unece_unit_id(UNECE_CODES.get(unit, "")),
                            DisplayName=ua.LocalizedText(unit),
                            Description=ua.LocalizedText(unit))
