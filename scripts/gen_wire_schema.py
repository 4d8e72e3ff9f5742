#!/usr/bin/env python3
"""Generates broker/wire/src/schema.rs from Apache Kafka's JSON message schemas.

Usage: scripts/gen_wire_schema.py KAFKA_MESSAGE_DIR KAFKA_COMMIT > broker/wire/src/schema.rs

KAFKA_MESSAGE_DIR is `clients/src/main/resources/common/message` of an Apache
Kafka checkout (the schema files themselves are not kept in this repository);
KAFKA_COMMIT names the commit they came from, recorded in the output. The
output is a static table of every request, response and header message: per
field its wire type, the versions it is present in, the versions it is nullable
in, its tag when tagged, and nested structs. runnel-wire walks frames with it.
Never edit the output by hand: regenerate it.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

MAX = 32767  # i16::MAX: "N+" versions

# Versions marked unstable at the source commit that Kafka later released with
# the same fields (the kafka-protocol codec, generated from Kafka 4.1.0, has
# the identical layout; the broker's codec-versus-schema test checks it):
# ConsumerGroupHeartbeat v1 (KIP-848's SubscribedTopicRegex, released in 4.0).
RELEASED_LATER = {"ConsumerGroupHeartbeatRequest": 1}


def load(path):
    text = path.read_text()
    # Kafka's schema files carry // comments (they are not strict JSON).
    text = re.sub(r"^\s*//.*$", "", text, flags=re.M)
    return json.loads(text)


def versions(spec):
    """'3+' -> (3, MAX); '0-12' -> (0, 12); '5' -> (5, 5); 'none' or None -> empty."""
    if spec is None or spec == "none":
        return (1, 0)
    if spec.endswith("+"):
        return (int(spec[:-1]), MAX)
    if "-" in spec:
        lo, hi = spec.split("-")
        return (int(lo), int(hi))
    return (int(spec), int(spec))


def const_name(*parts):
    name = "_".join(parts)
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return re.sub(r"[^A-Za-z0-9_]", "_", name).upper()


PRIMS = {
    "bool": "Bool",
    "int8": "Int8",
    "int16": "Int16",
    "uint16": "Uint16",
    "int32": "Int32",
    "int64": "Int64",
    "float64": "Float64",
    "uuid": "Uuid",
    "string": "String",
    "bytes": "Bytes",
    "records": "Records",
}


class Gen:
    def __init__(self):
        self.statics = []  # (name, [field source lines])

    def struct(self, name, fields, common):
        lines = []
        for f in fields:
            lines.append(self.field(name, f, common))
        self.statics.append((name, lines))
        return name

    def ty(self, owner, f, common):
        t = f["type"]
        is_array = t.startswith("[]")
        base = t[2:] if is_array else t
        if base in PRIMS:
            inner = f"Ty::{PRIMS[base]}"
        else:
            sub = f.get("fields")
            if sub is None:
                sub = common[base]
            inner = f"Ty::Struct(&{self.struct(const_name(owner, f['name']), sub, common)})"
        return f"Ty::Array(&{inner})" if is_array else inner

    def field(self, owner, f, common):
        v = versions(f.get("versions"))
        n = versions(f.get("nullableVersions"))
        tag = f.get("tag")
        tv = versions(f.get("taggedVersions")) if tag is not None else (1, 0)
        flex = f.get("flexibleVersions")
        flex_v = versions(flex) if flex is not None else None
        return (
            "    Field {\n"
            f"        name: \"{f['name']}\",\n"
            f"        ty: {self.ty(owner, f, common)},\n"
            f"        versions: V({v[0]}, {v[1]}),\n"
            f"        nullable: V({n[0]}, {n[1]}),\n"
            f"        tag: {'Some((' + str(tag) + f', V({tv[0]}, {tv[1]})))' if tag is not None else 'None'},\n"
            f"        flexible: {'Some(V(' + str(flex_v[0]) + ', ' + str(flex_v[1]) + '))' if flex_v else 'None'},\n"
            "    },"
        )


def main():
    src = Path(sys.argv[1])
    commit = sys.argv[2]
    gen = Gen()
    messages = []
    for path in sorted(src.glob("*.json")):
        spec = load(path)
        kind = spec.get("type")
        if kind not in ("request", "response", "header"):
            # Of the "data" schemas only the consumer protocol's are decoded
            # from untrusted bytes (JoinGroup/SyncGroup member metadata).
            if not spec["name"].startswith("ConsumerProtocol"):
                continue
        valid = versions(spec.get("validVersions"))
        if "Share" in spec["name"]:
            # Share groups (KIP-932) were in development at that commit and
            # their layouts changed before release: leave them out entirely.
            continue
        if spec.get("latestVersionUnstable") and RELEASED_LATER.get(spec["name"]) != valid[1]:
            # Not yet released at that commit: its layout may still change.
            valid = (valid[0], valid[1] - 1)
        if valid[0] > valid[1]:
            continue  # removed APIs ("validVersions": "none")
        common = {c["name"]: c["fields"] for c in spec.get("commonStructs", [])}
        fields = gen.struct(const_name(spec["name"]), spec.get("fields", []), common)
        flex = versions(spec.get("flexibleVersions"))
        messages.append(
            "    Message {\n"
            f"        name: \"{spec['name']}\",\n"
            f"        api_key: {spec.get('apiKey', -1)},\n"
            f"        kind: Kind::{kind.capitalize()},\n"
            f"        valid: V({valid[0]}, {valid[1]}),\n"
            f"        flexible: V({flex[0]}, {flex[1]}),\n"
            f"        fields: &{fields},\n"
            "    },"
        )
    out = [
        f"// @generated by scripts/gen_wire_schema.py from Apache Kafka's message schemas",
        f"// (clients/src/main/resources/common/message at commit {commit}).",
        "// Do not edit: regenerate.",
        "",
        "use crate::schema_types::{Field, Kind, Message, Ty, V};",
        "",
        "/// Every request, response and header message Kafka defines, and the consumer protocol's data.",
        f"pub(crate) static MESSAGES: [Message; {len(messages)}] = [",
        *messages,
        "];",
    ]
    for name, lines in gen.statics:
        out.append("")
        out.append(f"static {name}: [Field; {len(lines)}] = [")
        out.extend(lines)
        out.append("];")
    # Formatted as `cargo fmt` would, so the checked-in file stays fmt-clean.
    formatted = subprocess.run(
        ["rustfmt", "--edition", "2021", "--emit", "stdout"],
        input="\n".join(out) + "\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    sys.stdout.write(formatted)


if __name__ == "__main__":
    main()
