// A node-opcua server (an OPC UA stack independent of asyncua) for the collector's
// interoperability tests: tests/interop/test_node_opcua.py starts it as a subprocess.
//
//   node opcua_server.mjs --port 4840 --namespace urn:smeltwatch:interop --pki DIR
//        [--security none|sign_encrypt] [--trust-client CERT] [--zones 4] [--period-ms 100]
//
// Address space, in namespace --namespace (all Double, historizing, AnalogItems with
// EngineeringUnits and EURange):
//   Objects/reduction/furnace-01/zone-N/zone_temp_c   s=reduction/furnace-01/zone-N.zone_temp_c
//       (string NodeIds that match the plant model's default node_template {asset}.{signal})
//   Objects/refining/refiner-01/melt_temp             i=2001, in kelvin
//   Objects/refining/refiner-01/flue_temp             i=2002, in °C
// Every variable gets a new value every --period-ms with its source timestamp; node-opcua's
// in-memory historian keeps the values for HistoryRead (lost when the process ends).
//
// stdout: `CERT <path>` (the server certificate, PEM), then `READY <endpoint>` when listening;
// `OK <command>` after each command. stdin, one command a line:
//   outage   stop listening and cut every open connection (the process, its sessions and its
//            history live on: a network outage as the client sees it)
//   resume   listen again on the same port
//   bad N    zone N's sensor fails: its values become BadSensorFailure without a value
//   good N   zone N's sensor works again
// SIGTERM / SIGINT: shut down cleanly and exit 0.

import path from "node:path";
import readline from "node:readline";
import { parseArgs } from "node:util";

import {
    DataType,
    MessageSecurityMode,
    OPCUACertificateManager,
    OPCUAServer,
    SecurityPolicy,
    StatusCodes,
    Variant,
    standardUnits,
} from "node-opcua";

const { values: opt } = parseArgs({
    options: {
        port: { type: "string" },
        namespace: { type: "string" },
        pki: { type: "string" },
        security: { type: "string", default: "none" },
        "trust-client": { type: "string" },
        zones: { type: "string", default: "4" },
        "period-ms": { type: "string", default: "100" },
        "history-values": { type: "string", default: "20000" },
    },
});
if (!opt.port || !opt.namespace || !opt.pki) {
    console.error("usage: node opcua_server.mjs --port PORT --namespace URI --pki DIR [...]");
    process.exit(2);
}
if (!["none", "sign_encrypt"].includes(opt.security)) {
    console.error(`--security none|sign_encrypt, not ${opt.security}`);
    process.exit(2);
}
const port = Number(opt.port);
const zones = Number(opt.zones);
const periodMs = Number(opt["period-ms"]);
const secure = opt.security === "sign_encrypt";

const certificateManager = new OPCUACertificateManager({
    rootFolder: path.resolve(opt.pki),
    // with a client certificate to trust, every other one is rejected
    automaticallyAcceptUnknownCertificate: !opt["trust-client"],
});
await certificateManager.initialize();
if (opt["trust-client"]) {
    const { readFile } = await import("node:fs/promises");
    await certificateManager.trustCertificate(await readFile(opt["trust-client"]));
}

const server = new OPCUAServer({
    port,
    hostname: "127.0.0.1",
    resourcePath: "",
    serverCertificateManager: certificateManager,
    securityPolicies: [secure ? SecurityPolicy.Basic256Sha256 : SecurityPolicy.None],
    securityModes: [secure ? MessageSecurityMode.SignAndEncrypt : MessageSecurityMode.None],
    allowAnonymous: true,
    buildInfo: { productName: "smeltwatch interop server (node-opcua)", manufacturerName: "test" },
    serverInfo: { applicationUri: "urn:smeltwatch:interop:node-opcua", productUri: "smeltwatch-interop" },
});
await server.initialize();

const addressSpace = server.engine.addressSpace;
const ns = addressSpace.registerNamespace(opt.namespace);
const objects = addressSpace.rootFolder.objects;

function folder(parent, id, name) {
    return ns.addFolder(parent, { browseName: name, nodeId: `s=${id}` });
}

function analog(parent, nodeId, name, unit, low, high) {
    const variable = ns.addAnalogDataItem({
        organizedBy: parent,
        nodeId,
        browseName: name,
        dataType: "Double",
        engineeringUnitsRange: { low, high },
        engineeringUnits: unit,
        minimumSamplingInterval: 0, // exception-based: every change is reported
    });
    addressSpace.installHistoricalDataNode(variable, {
        maxOnlineValues: Number(opt["history-values"]),
    });
    return variable;
}

// name → { variable, value(t) } ; t in seconds since start
const signals = [];
const furnace = folder(folder(objects, "reduction", "reduction"), "reduction/furnace-01", "furnace-01");
for (let z = 1; z <= zones; z++) {
    const asset = `reduction/furnace-01/zone-${z}`;
    const variable = analog(folder(furnace, asset, `zone-${z}`), `s=${asset}.zone_temp_c`,
        "zone_temp_c", standardUnits.degree_celsius, 0, 1400);
    signals.push({ zone: z, variable, value: (t) => 1150 + 10 * z + 25 * Math.sin(t / 7 + z) });
}
const refiner = folder(folder(objects, "refining", "refining"), "refining/refiner-01", "refiner-01");
signals.push({
    variable: analog(refiner, "i=2001", "melt_temp", standardUnits.kelvin, 273, 1500),
    value: (t) => 973.15 + 5 * Math.sin(t / 5),
});
signals.push({
    variable: analog(refiner, "i=2002", "flue_temp", standardUnits.degree_celsius, 0, 1000),
    value: (t) => 420 + 15 * Math.cos(t / 3),
});

const failed = new Set(); // zones whose sensor has failed
const started = Date.now();
function update() {
    const now = new Date();
    const t = (now.getTime() - started) / 1000;
    for (const s of signals) {
        if (failed.has(s.zone)) {
            // Part 4, 7.7.1: a Bad value carries no value
            s.variable.setValueFromSource(new Variant({ dataType: DataType.Null }),
                StatusCodes.BadSensorFailure, now);
        } else {
            s.variable.setValueFromSource(new Variant({ dataType: DataType.Double, value: s.value(t) }),
                StatusCodes.Good, now);
        }
    }
}
update();
const timer = setInterval(update, periodMs);

await server.start();
console.log(`CERT ${server.certificateFile}`);
console.log(`READY ${server.getEndpointUrl()}`);

async function command(line) {
    const [verb, arg] = line.trim().split(/\s+/);
    if (verb === "outage") {
        await server.suspendEndPoints(); // stops listening, keeps the open connections
        for (const endpoint of server.endpoints) {
            endpoint.abruptlyInterruptChannels(); // … which a network outage cuts too
        }
    } else if (verb === "resume") {
        await server.resumeEndPoints();
    } else if (verb === "bad") {
        failed.add(Number(arg));
    } else if (verb === "good") {
        failed.delete(Number(arg));
    } else if (verb) {
        console.log(`ERROR unknown command ${line.trim()}`);
        return;
    } else {
        return;
    }
    console.log(`OK ${line.trim()}`);
}

let queue = Promise.resolve(); // commands run one after the other
readline.createInterface({ input: process.stdin }).on("line", (line) => {
    queue = queue.then(() => command(line)).catch((err) => console.log(`ERROR ${err.message}`));
});

let stopping = false;
async function stop(signal) {
    if (stopping) {
        return;
    }
    stopping = true;
    clearInterval(timer);
    await server.shutdown(0);
    console.log(`STOPPED ${signal}`);
    process.exit(0);
}
process.on("SIGTERM", () => stop("SIGTERM"));
process.on("SIGINT", () => stop("SIGINT"));
